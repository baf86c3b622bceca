"""Cluster lifecycle and everyday commands: init, up, down, destroy, status, env, put, get, logs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcsctl import releases, report, spec, tuning
from dcsctl.cli.common import (
    LOOK,
    SET_UP,
    ClusterOption,
    JsonOption,
    SpecOption,
    YesOption,
    app,
    cluster_of,
    confirm,
    running_cluster_of,
    session_of,
)
from dcsctl.errors import DcsctlError, ExitCode
from dcsctl.ops import keys, lifecycle, shell
from dcsctl.ops import logs as member_logs
from dcsctl.ops import plan as plan_ops
from dcsctl.ops import preflight as preflight_ops
from dcsctl.ops import status as status_ops
from dcsctl.ops.cluster import Cluster


def _remember_client(ctx: typer.Context, spec_file: Path | None, cluster: str | None,
                     target: Cluster) -> None:
    """Record how the quick paths of `get`/`put` reach this cluster (cli/quick.py)."""
    try:
        shell.remember_client(target, spec_file, cluster)
    except OSError as exc:  # a cache: the command itself succeeded, and the next run is full
        session_of(ctx).warnings.append(f"could not record the quick-path profile: {exc}")


@app.command(rich_help_panel=SET_UP)
def init(
    ctx: typer.Context,
    members: Annotated[int, typer.Option("--members", "-n", help="member count")] = 3,
    name: Annotated[str, typer.Option("--name", help="cluster name")] = "dcs",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file to write")] = None,
    target: Annotated[spec.Target, typer.Option("--target", help="lab (loopback) or ssh "
                                                "(the guide's hosts)")] = spec.Target.LAB,
    rtt_ms: Annotated[float | None, typer.Option(
        "--rtt-ms", help="round trip between members (ms): heartbeat and election timeout "
        "by etcd's tuning rule")] = None,
) -> None:
    """Write an annotated cluster spec (to stdout, or to -o FILE)."""
    session = session_of(ctx)
    lab = spec.lab_spec(members, name) if target is spec.Target.LAB else spec.ssh_spec(
        members, name, release=str(releases.default_release(session.context.environ)))
    notes: dict[str, list[str]] = {}
    if rtt_ms is not None:
        timings = tuning.suggest(rtt_ms)
        lab = tuning.with_timings(lab, timings)
        notes["etcd"] = timings.why()
    session.warnings += lab.warnings()
    text = spec.render_annotated(lab, notes)
    if output is None:
        session.out.file.write(text)
        return
    if output.exists():
        raise DcsctlError(f"{output} already exists", fix="choose another -o FILE or remove it")
    output.write_text(text)
    session.err.print(f"wrote {output}", highlight=False)


@app.command(rich_help_panel=SET_UP)
def up(
    ctx: typer.Context, spec_file: SpecOption = None, cluster: ClusterOption = None,
    json_output: JsonOption = False,
    plan: Annotated[bool, typer.Option("--plan", help="show what would change on each "
                                       "member's host; touch nothing")] = False,
) -> None:
    """Create or resume the cluster and bring it to the spec (safe to re-run)."""
    session = session_of(ctx)
    target = cluster_of(ctx, spec_file, cluster)
    if plan:
        planned = plan_ops.plan(target)
        if json_output:
            session.out.print_json(report.dump_json(report.plan_json(planned)))
        else:
            for line in report.plan_text(planned):
                session.out.print(line, highlight=False, markup=False)
        return
    result = lifecycle.up(target)
    session.warnings += result.warnings
    _remember_client(ctx, spec_file, cluster, target)
    if json_output:
        session.out.print_json(report.dump_json(report.up_json(result)))
        return
    view = status_ops.status(target)
    for table in report.status_tables(view):
        session.out.print(table)
    session.out.print(report.status_summary(view), highlight=False)
    if not result.changed:
        session.err.print("no changes", highlight=False)


@app.command(rich_help_panel=SET_UP)
def preflight(
    ctx: typer.Context, spec_file: SpecOption = None, cluster: ClusterOption = None,
    json_output: JsonOption = False,
) -> None:
    """Check that every member's host can run it (SSH hosts: SSH, sudo, OS, init system,
    clock, free space, ports, fsync, round trip, etcd; lab: etcd, ports)."""
    session = session_of(ctx)
    result = preflight_ops.preflight(cluster_of(ctx, spec_file, cluster))
    if json_output:
        session.out.print_json(report.dump_json(report.preflight_json(result)))
    else:
        session.out.print(report.preflight_table(result))
    if problem := result.problem():
        raise problem


@app.command(rich_help_panel=SET_UP)
def down(ctx: typer.Context, spec_file: SpecOption = None, cluster: ClusterOption = None) -> None:
    """Stop every member (data, certificates and config are kept)."""
    result = lifecycle.down(running_cluster_of(ctx, spec_file, cluster))
    session_of(ctx).out.print(report.down_text(result), highlight=False)


@app.command(rich_help_panel=SET_UP)
def destroy(
    ctx: typer.Context, spec_file: SpecOption = None, cluster: ClusterOption = None,
    yes: YesOption = False,
) -> None:
    """Stop the members and delete the cluster: data, PKI, credentials."""
    target = running_cluster_of(ctx, spec_file, cluster)
    if not target.dir.root.exists():
        raise DcsctlError(f"no cluster named {target.spec.name!r} in {target.dir.home}",
                          fix="nothing to destroy; check DCSCTL_HOME or --cluster")
    confirm(f"Delete cluster {target.spec.name!r} and all its data in {target.dir.root}?",
            yes=yes, action="destroy")
    result = lifecycle.destroy(target)
    kept = target.target.remote.left_behind() if target.target.remote else ""
    session_of(ctx).out.print(report.down_text(result) + f"; removed {target.dir.root}"
                              + (f"\n{kept}" if kept else ""), highlight=False)


@app.command(rich_help_panel=LOOK)
def status(
    ctx: typer.Context, spec_file: SpecOption = None, cluster: ClusterOption = None,
    json_output: JsonOption = False,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="live view until Ctrl-C")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.2,
                                            help="--watch: seconds between refreshes")] = 2.0,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="draw the last minutes Prometheus holds into FILE.png")] = None,
    prometheus_url: Annotated[str | None, typer.Option(
        "--prometheus", help="--plot: Prometheus URL, e.g. http://localhost:9090")] = None,
    minutes: Annotated[float, typer.Option("--minutes", min=1,
                                           help="--plot: how far back")] = 15,
) -> None:
    """Members, endpoint status, health and alarms in one view (exit 5 if unhealthy);
    `--watch`: a live view; `--plot FILE.png --prometheus URL`: the last minutes."""
    session = session_of(ctx)
    target = cluster_of(ctx, spec_file, cluster)
    if watch or plot:
        from dcsctl.cli import watch as watch_cli

        if plot is not None:
            if prometheus_url is None:
                raise DcsctlError("--plot draws what Prometheus holds and needs --prometheus",
                                  fix="add --prometheus http://HOST:9090 (the one that runs "
                                  "the configuration `dcsctl monitoring` wrote)")
            watch_cli.plot(session, target, plot, prometheus_url, minutes)
        if watch:
            watch_cli.watch(session, target, interval)
        return
    view = status_ops.status(target)
    from dcsctl.ops import escrow_status

    session.warnings += filter(None, [escrow_status.staleness(
        target.dir, store_configured=bool(target.spec.backup and target.spec.backup.store))])
    if json_output:
        session.out.print_json(report.dump_json(report.status_json(view)))
    else:
        for table in report.status_tables(view):
            session.out.print(table)
        for problem in view.problems:
            session.out.print(f"problem: {problem}", highlight=False)
        session.out.print(report.status_summary(view), highlight=False)
    if not view.healthy:
        raise typer.Exit(ExitCode.UNHEALTHY)


@app.command(rich_help_panel=LOOK)
def env(ctx: typer.Context, spec_file: SpecOption = None, cluster: ClusterOption = None) -> None:
    """Print shell exports for etcdctl as admin: eval "$(dcsctl env)"."""
    exports = shell.etcdctl_env(cluster_of(ctx, spec_file, cluster))
    session_of(ctx).out.file.write(report.shell_exports(exports) + "\n")


@app.command(rich_help_panel=LOOK)
def put(
    ctx: typer.Context, key: str, value: str, spec_file: SpecOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Write a key (as admin)."""
    target = cluster_of(ctx, spec_file, cluster)
    keys.put(target, key, value.encode())
    _remember_client(ctx, spec_file, cluster, target)
    session_of(ctx).out.print("OK", highlight=False)


@app.command(rich_help_panel=LOOK)
def get(
    ctx: typer.Context, key: str, spec_file: SpecOption = None, cluster: ClusterOption = None,
    json_output: JsonOption = False,
) -> None:
    """Read a key's value (as admin)."""
    target = cluster_of(ctx, spec_file, cluster)
    found = keys.get(target, key)
    _remember_client(ctx, spec_file, cluster, target)
    out = session_of(ctx).out
    if json_output:
        out.print_json(report.dump_json({
            "key": found.key, "value": found.value.decode(errors="replace"),
            "create_revision": found.create_revision, "mod_revision": found.mod_revision,
            "version": found.version,
        }))
    else:
        out.file.write(found.value.decode(errors="replace") + "\n")


@app.command(rich_help_panel=LOOK)
def logs(
    ctx: typer.Context, member: str, spec_file: SpecOption = None,
    cluster: ClusterOption = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="how many lines")] = 50,
) -> None:
    """Show the last lines of a member's etcd log."""
    tail = member_logs.tail(cluster_of(ctx, spec_file, cluster), member, lines)
    session_of(ctx).out.file.write("".join(line + "\n" for line in tail))


