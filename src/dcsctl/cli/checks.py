"""`check perf` and `check datascale`: etcdctl's checks, with percentiles, JSON, a plot."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from dcsctl import report
from dcsctl.cli.common import (
    LOOK,
    ClusterOption,
    JsonOption,
    Session,
    SpecOption,
    app,
    running_cluster_of,
    session_of,
)
from dcsctl.errors import DcsctlError, ExitCode
from dcsctl.ops import checks
from dcsctl.perf import MAX_DURATION_S, LatencyStats

check_app = typer.Typer(help="The guide's etcdctl checks: perf and datascale.",
                        no_args_is_help=True)
app.add_typer(check_app, name="check", rich_help_panel=LOOK)

LoadOption = Annotated[str, typer.Option("--load", help="workload: s, m, l or xl")]
YesOption = Annotated[bool, typer.Option(
    "--yes", "-y", help="run even on a DCS that serves Patroni (do not ask)")]


def _confirm(session: Session, plan: checks.CheckPlan, yes: bool) -> None:
    """On a DCS that serves Patroni, say what the check risks and ask (or take --yes)."""
    if not plan.scopes or yes:
        return
    if not sys.stdin.isatty():
        raise checks.unconfirmed(plan)
    session.err.print(f"warning: {plan.risk}", highlight=False, markup=False)
    if not typer.confirm("Run the check anyway?"):
        raise DcsctlError("check cancelled", fix="pass --yes to skip the question")


def _space_json(result: checks.PerfResult | checks.DatascaleResult) -> dict[str, object]:
    estimate = result.plan.estimate
    recovery = result.recovery
    return {
        "estimate": {"writes": estimate.writes, "bytes_per_write": estimate.bytes_per_write,
                     "added": estimate.added, "projected": estimate.projected,
                     "quota": estimate.quota},
        "patroni_scopes": list(result.plan.scopes),
        "nospace": None if recovery is None else {
            "stopped_by": recovery.stopped_by, "disarmed": list(recovery.disarmed),
            "db_size_after": recovery.db_size_after,
            "write_verified": recovery.write_verified,
        },
    }


def _print_recovery(session: Session, result: checks.PerfResult | checks.DatascaleResult,
                    ) -> None:
    if result.recovery is not None:
        for line in result.recovery.lines():
            session.out.print(line, highlight=False, markup=False)


def _stats_json(stats: LatencyStats) -> dict[str, float | int]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in stats.__dict__.items()}


def _percentiles(stats: LatencyStats) -> str:
    return (f"Latency: p50 {stats.p50 * 1000:.2f} ms, p90 {stats.p90 * 1000:.2f} ms, "
            f"p99 {stats.p99 * 1000:.2f} ms (mean {stats.mean * 1000:.2f} ms, "
            f"{stats.count} writes in {stats.seconds:.1f} s)")


@check_app.command("perf")
def perf_(
    ctx: typer.Context, load: LoadOption = "s",
    duration: Annotated[float | None, typer.Option(
        "--duration", min=1, help=f"seconds, at most {MAX_DURATION_S} (etcdctl: 60)")] = None,
    prefix: Annotated[str, typer.Option("--prefix")] = checks.PERF_PREFIX,
    plot: Annotated[Path | None, typer.Option("--plot", help="write a PNG here")] = None,
    spec_file: SpecOption = None, cluster: ClusterOption = None, json_output: JsonOption = False,
    yes: YesOption = False,
) -> None:
    """Write at the load's rate for its duration; PASS/FAIL as etcdctl judges it."""
    session = session_of(ctx)
    target = running_cluster_of(ctx, spec_file, cluster)
    _confirm(session, checks.plan_perf(target, load, duration_s=duration, prefix=prefix), yes)
    with Progress(TextColumn("check perf"), BarColumn(), TextColumn("{task.fields[writes]}"),
                  TimeRemainingColumn(), console=session.err, transient=True,
                  disable=not session.err.is_terminal) as bar:
        task = bar.add_task("perf", total=duration or 60, writes="")

        def tick(done: int, elapsed: float) -> None:
            bar.update(task, completed=elapsed, writes=f"{done} writes")

        result = checks.check_perf(target, load, duration_s=duration, prefix=prefix,
                                   on_tick=tick, shared_ok=True)
    if plot is not None:
        from dcsctl.plot import perf_png

        perf_png(result, plot)
    if json_output:
        session.out.print_json(report.dump_json({
            "load": result.load.__dict__, "passed": result.verdict.passed,
            "verdict": list(result.verdict.lines), "stats": _stats_json(result.stats),
            "errors": result.errors, "throughput_per_second": list(result.timeline),
            "db_size_before": result.db_size_before, "db_size_after": result.db_size_after,
            **_space_json(result),
        }))
    else:
        _print_recovery(session, result)
        for line in result.verdict.lines[:-1]:
            session.out.print(line, highlight=False)
        session.out.print(_percentiles(result.stats), highlight=False)
        session.out.print(
            f"Cleaned up: keys under {prefix} deleted, history compacted, members "
            f"defragmented (db {report.human_bytes(result.db_size_before)} before, "
            f"{report.human_bytes(result.db_size_after)} after)", highlight=False)
        session.out.print(result.verdict.lines[-1], highlight=False)
    if not result.verdict.passed:
        raise typer.Exit(ExitCode.FAILED)


@check_app.command("datascale")
def datascale(
    ctx: typer.Context, load: LoadOption = "s",
    prefix: Annotated[str, typer.Option("--prefix")] = checks.DATASCALE_PREFIX,
    spec_file: SpecOption = None, cluster: ClusterOption = None, json_output: JsonOption = False,
    yes: YesOption = False,
) -> None:
    """Write the load's keys; report the memory growth of every member."""
    session = session_of(ctx)
    target = running_cluster_of(ctx, spec_file, cluster)
    _confirm(session, checks.plan_datascale(target, load, prefix=prefix), yes)
    with Progress(TextColumn("check datascale"), BarColumn(), TextColumn("{task.completed}"),
                  console=session.err, transient=True,
                  disable=not session.err.is_terminal) as bar:
        task = bar.add_task("datascale", total=None)
        result = checks.check_datascale(
            target, load, prefix=prefix, shared_ok=True,
            on_tick=lambda done, _: bar.update(task, completed=done))
    if json_output:
        session.out.print_json(report.dump_json({
            "load": result.load.__dict__, "passed": result.passed,
            "stats": _stats_json(result.stats),
            "memory": [{"member": m.name, "before": m.before, "after": m.after,
                        "growth": m.growth} for m in result.memory],
            "db_size_before": result.db_size_before, "db_size_after": result.db_size_after,
            **_space_json(result),
        }))
    else:
        _print_recovery(session, result)
        session.out.print(
            f"Data scale check for load {result.load.name}: {result.load.keys} key-value "
            f"pairs, {result.load.key_size + result.load.value_size} bytes each, "
            f"{result.load.clients} concurrent clients.", highlight=False)
        for m in result.memory:
            session.out.print(f"{'PASS' if result.passed else 'FAIL'}: {m.name}: approximate "
                              f"memory used {m.growth / 2**20:.2f} MB", highlight=False)
        session.out.print(_percentiles(result.stats), highlight=False)
    if not result.passed:
        raise typer.Exit(ExitCode.FAILED)
