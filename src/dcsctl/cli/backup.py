"""Backup and disaster recovery: backup [list|verify|schedule], restore."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from dcsctl.cli.common import (
    PROTECT,
    ClusterOption,
    JsonOption,
    PatroniRiskOption,
    SpecOption,
    app,
    cluster_of,
    clusters_of,
    confirm,
    guard_patroni,
    show,
)
from dcsctl.errors import DcsctlError, UsageError
from dcsctl.ops import backups
from dcsctl.ops import schedule as schedule_ops
from dcsctl.report import backups as report
from dcsctl.snapshots import parse_age

backup_app = typer.Typer(
    help="Take a verified snapshot (`dcsctl backup`), list or verify backups.",
    invoke_without_command=True,
)
app.add_typer(backup_app, name="backup", rich_help_panel=PROTECT)

DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="backup directory (default: <state dir>/<cluster>/backups)"),
]


def _age(text: str | None) -> dt.timedelta | None:
    if text is None:
        return None
    try:
        return parse_age(text)
    except ValueError as exc:
        raise DcsctlError(f"--max-age: {exc}", fix="write it like 36h, 7d or 2w") from exc


@backup_app.callback()
def backup(
    ctx: typer.Context,
    spec_file: SpecOption = None,
    cluster_name: ClusterOption = None,
    directory: DirOption = None,
    keep: Annotated[int | None, typer.Option("--keep", min=1,
                                             help="keep only the newest N backups")] = None,
    max_age: Annotated[str | None, typer.Option("--max-age",
                                                help="remove backups older than this (7d)")] = None,
    json_output: JsonOption = False,
) -> None:
    """Stream a snapshot from a healthy member, verify it, write it with its manifest."""
    if ctx.invoked_subcommand is not None:
        return
    named, running = clusters_of(ctx, spec_file, cluster_name)
    taken = backups.take(named, running, directory=directory, keep=keep, max_age=_age(max_age))
    show(ctx, report.backup_output(taken), json_output=json_output, warnings=taken.warnings)


@backup_app.command("list")
def list_(
    ctx: typer.Context, spec_file: SpecOption = None, cluster_name: ClusterOption = None,
    directory: DirOption = None, json_output: JsonOption = False,
) -> None:
    """Backups with their manifests, oldest first."""
    cluster = cluster_of(ctx, spec_file, cluster_name)
    listing = backups.listing(cluster, directory)
    show(ctx, report.listing_output(listing, cluster.spec.name), json_output=json_output)


@backup_app.command("verify")
def verify_(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="a snapshot file, or a backup in the store "
                                        "(a name from `dcsctl backup list`)")],
    spec_file: SpecOption = None, cluster_name: ClusterOption = None,
) -> None:
    """Check a snapshot: etcd's hash, the manifest's sha256, `etcdutl snapshot status`;
    a stored backup is fetched and opened first (every chunk authenticated)."""
    verified = backups.verify(cluster_of(ctx, spec_file, cluster_name), file)
    show(ctx, report.verify_output(file, verified))


@app.command(rich_help_panel=PROTECT)
def restore(
    ctx: typer.Context,
    file: Annotated[str | None, typer.Argument(
        help="a snapshot file, or a backup in the store (see `dcsctl backup list`)")] = None,
    spec_file: SpecOption = None,
    cluster_name: ClusterOption = None,
    latest: Annotated[bool, typer.Option(
        "--latest", help="the newest backup of this cluster in the store")] = False,
    keep_old: Annotated[bool, typer.Option("--keep-old",
                                           help="keep the old data dirs afterwards")] = False,
    bump_revision: Annotated[int, typer.Option(
        "--bump-revision", min=0,
        help="raise the revision by N so watchers (Patroni) see no time travel")] = 0,
    mark_compacted: Annotated[bool, typer.Option(
        "--mark-compacted", help="compact at the restored revision (with --bump-revision)")
    ] = False,
    from_other_cluster: Annotated[bool, typer.Option(
        "--from-other-cluster",
        help="allow a snapshot of another cluster (name, cluster ID or manifest key)")] = False,
    without_manifest: Annotated[bool, typer.Option(
        "--without-manifest",
        help="allow a snapshot without a (signed) manifest: only etcd's hash is checked")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    accept_patroni_risk: PatroniRiskOption = None,
) -> None:
    """Disaster recovery: rebuild every member from one verified snapshot."""
    # Here, not at the top: restore brings in deployment and the lifecycle, which a
    # backup (run from cron, timed against etcdctl) has no use for.
    from dcsctl.ops import restore as restore_ops

    named, running = clusters_of(ctx, spec_file, cluster_name)
    restore_ops.check_options(bump_revision=bump_revision, mark_compacted=mark_compacted)
    guard_patroni(ctx, running, "restore", accept_patroni_risk)
    if (file is None) == (not latest):
        raise UsageError("name one snapshot: a file, a backup in the store, or --latest",
                         fix="e.g. `dcsctl restore --latest` or `dcsctl restore FILE`")
    source = backups.restore_source(named, file, from_other_cluster=from_other_cluster,
                                    without_manifest=without_manifest)
    show(ctx, report.preview_output(named.spec.name, source.preview, source.path))
    confirm(f"Replace the data of every member of {named.spec.name!r} with this snapshot?",
            yes=yes, action="restore")
    result = backups.restore(named, running, source, keep_old=keep_old,
                             bump_revision=bump_revision, mark_compacted=mark_compacted)
    show(ctx, report.restored_output(result, source.path))


@backup_app.command("schedule")
def backup_schedule(
    ctx: typer.Context,
    spec_file: SpecOption = None,
    cluster_name: ClusterOption = None,
    directory: DirOption = None,
    on_calendar: Annotated[str, typer.Option(
        "--on-calendar", help="when, in systemd's calendar syntax (hourly, daily, *:0/15)")
    ] = "hourly",
    keep: Annotated[int | None, typer.Option("--keep", min=1,
                                             help="keep only the newest N backups")] = None,
    max_age: Annotated[str | None, typer.Option("--max-age",
                                                help="remove backups older than this (7d)")] = None,
    unit_dir: Annotated[Path | None, typer.Option(
        "--unit-dir", help="write the units here instead of systemd's (then enable them "
        "yourself)")] = None,
) -> None:
    """Run `dcsctl backup` on a systemd timer on this (the control) machine."""
    result = schedule_ops.schedule(
        cluster_of(ctx, spec_file, cluster_name), on_calendar=on_calendar, keep=keep,
        max_age=_age(max_age), directory=directory, unit_dir=unit_dir)
    show(ctx, report.schedule_output(result), warnings=result.warnings)
