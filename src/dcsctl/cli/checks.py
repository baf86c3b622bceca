"""`check perf` and `check datascale`: etcdctl's checks, with percentiles, JSON, a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from dcsctl.cli.common import (
    LOOK,
    ClusterOption,
    JsonOption,
    SpecOption,
    app,
    confirm,
    running_cluster_of,
    session_of,
    show,
)
from dcsctl.errors import ExitCode
from dcsctl.ops import checks
from dcsctl.perf import MAX_DURATION_S
from dcsctl.report import checks as report

check_app = typer.Typer(help="The guide's etcdctl checks: perf and datascale.",
                        no_args_is_help=True)
app.add_typer(check_app, name="check", rich_help_panel=LOOK)

LoadOption = Annotated[str, typer.Option("--load", help="workload: s, m, l or xl")]
YesOption = Annotated[bool, typer.Option(
    "--yes", "-y", help="run even on a DCS that serves Patroni (do not ask)")]


def _confirm(plan: checks.CheckPlan, yes: bool) -> None:
    """On a DCS that serves Patroni, say what the check risks and ask (or take --yes)."""
    if plan.scopes:
        confirm("Run the check anyway?", yes=yes, action="check", risk=plan.risk,
                unattended=checks.unconfirmed(plan))


@check_app.command("perf")
def perf_(
    ctx: typer.Context, load: LoadOption = "s",
    duration: Annotated[float | None, typer.Option(
        "--duration", min=1, help=f"seconds, at most {MAX_DURATION_S} (etcdctl: 60)")] = None,
    prefix: Annotated[str, typer.Option("--prefix")] = checks.PERF_PREFIX,
    plot: Annotated[Path | None, typer.Option("--plot", help="write a PNG here")] = None,
    spec_file: SpecOption = None, cluster_name: ClusterOption = None,
    json_output: JsonOption = False,
    yes: YesOption = False,
) -> None:
    """Write at the load's rate for its duration; PASS/FAIL as etcdctl judges it."""
    session = session_of(ctx)
    cluster = running_cluster_of(ctx, spec_file, cluster_name)
    _confirm(checks.plan_perf(cluster, load, duration_s=duration, prefix=prefix), yes)
    with Progress(TextColumn("check perf"), BarColumn(), TextColumn("{task.fields[writes]}"),
                  TimeRemainingColumn(), console=session.err, transient=True,
                  disable=not session.err.is_terminal) as bar:
        task = bar.add_task("perf", total=duration or 60, writes="")

        def tick(done: int, elapsed: float) -> None:
            bar.update(task, completed=elapsed, writes=f"{done} writes")

        result = checks.check_perf(cluster, load, duration_s=duration, prefix=prefix,
                                   on_tick=tick, shared_ok=True)
    if plot is not None:
        from dcsctl.plot import perf_png

        perf_png(result, plot)
    show(ctx, report.perf_output(result, prefix), json_output=json_output)
    if not result.verdict.passed:
        raise typer.Exit(ExitCode.FAILED)


@check_app.command("datascale")
def datascale(
    ctx: typer.Context, load: LoadOption = "s",
    prefix: Annotated[str, typer.Option("--prefix")] = checks.DATASCALE_PREFIX,
    spec_file: SpecOption = None, cluster_name: ClusterOption = None,
    json_output: JsonOption = False,
    yes: YesOption = False,
) -> None:
    """Write the load's keys; report the memory growth of every member."""
    session = session_of(ctx)
    cluster = running_cluster_of(ctx, spec_file, cluster_name)
    _confirm(checks.plan_datascale(cluster, load, prefix=prefix), yes)
    with Progress(TextColumn("check datascale"), BarColumn(), TextColumn("{task.completed}"),
                  console=session.err, transient=True,
                  disable=not session.err.is_terminal) as bar:
        task = bar.add_task("datascale", total=None)
        result = checks.check_datascale(
            cluster, load, prefix=prefix, shared_ok=True,
            on_tick=lambda done, _: bar.update(task, completed=done))
    show(ctx, report.datascale_output(result), json_output=json_output)
    if not result.passed:
        raise typer.Exit(ExitCode.FAILED)
