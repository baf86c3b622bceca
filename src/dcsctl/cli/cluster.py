"""Cluster lifecycle and everyday commands: init, up, down, destroy, status, env, put, get, logs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcsctl import spec
from dcsctl.cli.common import (
    LOOK,
    SET_UP,
    ClusterOption,
    JsonOption,
    PatroniRiskOption,
    SpecOption,
    YesOption,
    app,
    cluster_of,
    confirm,
    running_cluster_of,
    session_of,
    show,
)
from dcsctl.errors import DcsctlError, ExitCode
from dcsctl.ops import keys, lifecycle, shell, user_spec
from dcsctl.ops import logs as member_logs
from dcsctl.ops import plan as plan_ops
from dcsctl.ops import preflight as preflight_ops
from dcsctl.ops import status as status_ops
from dcsctl.ops.cluster import Cluster
from dcsctl.report import Output
from dcsctl.report import cluster as report


def _remember_client(ctx: typer.Context, spec_file: Path | None, cluster_name: str | None,
                     cluster: Cluster) -> None:
    """Record how the quick paths of `get`/`put` reach this cluster (cli/quick.py)."""
    try:
        shell.remember_client(cluster, spec_file, cluster_name)
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
    made = user_spec.create(session_of(ctx).context.environ, members=members, name=name,
                            kind=target, rtt_ms=rtt_ms, output=output)
    show(ctx, report.init_output(made), warnings=made.warnings)


@app.command(rich_help_panel=SET_UP)
def up(
    ctx: typer.Context, spec_file: SpecOption = None, cluster_name: ClusterOption = None,
    json_output: JsonOption = False,
    plan: Annotated[bool, typer.Option("--plan", help="show what would change on each "
                                       "member's host; touch nothing")] = False,
    accept_patroni_risk: PatroniRiskOption = None,
) -> None:
    """Create or resume the cluster and bring it to the spec (safe to re-run)."""
    cluster = cluster_of(ctx, spec_file, cluster_name)
    if plan:
        show(ctx, report.plan_output(plan_ops.plan(cluster)), json_output=json_output)
        return
    result = lifecycle.up(cluster, frozenset(accept_patroni_risk or ()))
    _remember_client(ctx, spec_file, cluster_name, cluster)
    # For people, the cluster as it is now (over the record up left: not read again); a
    # script has the phases.
    view = None if json_output else status_ops.status(cluster, result.record)
    show(ctx, report.up_output(result, view), json_output=json_output,
         warnings=result.warnings)


@app.command(rich_help_panel=SET_UP)
def preflight(
    ctx: typer.Context, spec_file: SpecOption = None, cluster_name: ClusterOption = None,
    json_output: JsonOption = False,
) -> None:
    """Check that every member's host can run it (SSH hosts: SSH, sudo, OS, init system,
    clock, free space, ports, fsync, round trip, etcd; lab: etcd, ports)."""
    result = preflight_ops.preflight(cluster_of(ctx, spec_file, cluster_name))
    show(ctx, report.preflight_output(result), json_output=json_output)
    if problem := result.problem():
        raise problem


@app.command(rich_help_panel=SET_UP)
def down(ctx: typer.Context, spec_file: SpecOption = None,
         cluster_name: ClusterOption = None) -> None:
    """Stop every member (data, certificates and config are kept)."""
    result = lifecycle.down(running_cluster_of(ctx, spec_file, cluster_name))
    show(ctx, report.down_output(result))


@app.command(rich_help_panel=SET_UP)
def destroy(
    ctx: typer.Context, spec_file: SpecOption = None, cluster_name: ClusterOption = None,
    yes: YesOption = False,
) -> None:
    """Stop the members and delete the cluster: data, PKI, credentials."""
    cluster = running_cluster_of(ctx, spec_file, cluster_name)
    if not cluster.dir.root.exists():
        raise DcsctlError(f"no cluster named {cluster.spec.name!r} in {cluster.dir.home}",
                          fix="nothing to destroy; check DCSCTL_HOME or --cluster")
    confirm(f"Delete cluster {cluster.spec.name!r} and all its data in {cluster.dir.root}?",
            yes=yes, action="destroy")
    show(ctx, report.destroy_output(lifecycle.destroy(cluster)))


@app.command(rich_help_panel=LOOK)
def status(
    ctx: typer.Context, spec_file: SpecOption = None, cluster_name: ClusterOption = None,
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
    cluster = cluster_of(ctx, spec_file, cluster_name)
    if watch or plot:
        from dcsctl.cli import watch as watch_cli

        session = session_of(ctx)
        if plot is not None:
            if prometheus_url is None:
                raise DcsctlError("--plot draws what Prometheus holds and needs --prometheus",
                                  fix="add --prometheus http://HOST:9090 (the one that runs "
                                  "the configuration `dcsctl monitoring` wrote)")
            watch_cli.plot(session, cluster, plot, prometheus_url, minutes)
        if watch:
            watch_cli.watch(session, cluster, interval)
        return
    looked = status_ops.look(cluster)
    show(ctx, report.status_output(looked.view), json_output=json_output,
         warnings=looked.warnings)
    if not looked.view.healthy:
        raise typer.Exit(ExitCode.UNHEALTHY)


@app.command(rich_help_panel=LOOK)
def env(ctx: typer.Context, spec_file: SpecOption = None,
        cluster_name: ClusterOption = None) -> None:
    """Print shell exports for etcdctl as admin: eval "$(dcsctl env)"."""
    show(ctx, report.env_output(shell.etcdctl_env(cluster_of(ctx, spec_file, cluster_name))))


@app.command(rich_help_panel=LOOK)
def put(
    ctx: typer.Context, key: str, value: str, spec_file: SpecOption = None,
    cluster_name: ClusterOption = None,
) -> None:
    """Write a key (as admin)."""
    cluster = cluster_of(ctx, spec_file, cluster_name)
    keys.put(cluster, key, value.encode())
    _remember_client(ctx, spec_file, cluster_name, cluster)
    show(ctx, Output(("OK",)))


@app.command(rich_help_panel=LOOK)
def get(
    ctx: typer.Context, key: str, spec_file: SpecOption = None, cluster_name: ClusterOption = None,
    json_output: JsonOption = False,
) -> None:
    """Read a key's value (as admin)."""
    cluster = cluster_of(ctx, spec_file, cluster_name)
    found = keys.get(cluster, key)
    _remember_client(ctx, spec_file, cluster_name, cluster)
    show(ctx, report.get_output(found), json_output=json_output)


@app.command(rich_help_panel=LOOK)
def logs(
    ctx: typer.Context, member: str, spec_file: SpecOption = None,
    cluster_name: ClusterOption = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="how many lines")] = 50,
) -> None:
    """Show the last lines of a member's etcd log."""
    tail = member_logs.tail(cluster_of(ctx, spec_file, cluster_name), member, lines)
    show(ctx, report.logs_output(tail))


