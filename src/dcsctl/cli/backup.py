"""Backup and disaster recovery: backup [list|verify], restore."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dcsctl import report
from dcsctl.cli.common import (
    PROTECT,
    ClusterOption,
    JsonOption,
    PatroniRiskOption,
    SpecOption,
    app,
    cluster_of,
    clusters_of,
    guard_patroni,
    session_of,
)
from dcsctl.errors import DcsctlError, UsageError
from dcsctl.ops import backup as backup_ops
from dcsctl.ops import restore_preview, textfiles
from dcsctl.ops import schedule as schedule_ops
from dcsctl.ops.cluster import Cluster
from dcsctl.ops.restore_preview import RestorePreview, Side
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
    cluster: ClusterOption = None,
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
    session = session_of(ctx)
    target, running = clusters_of(ctx, spec_file, cluster)
    if directory is None and target.spec.backup and target.spec.backup.store:
        _backup_to_store(ctx, target, running, keep=keep, max_age=_age(max_age),
                         json_output=json_output)
        return
    try:
        result = backup_ops.take(target, directory=directory, keep=keep, max_age=_age(max_age))
    except DcsctlError:
        session.warnings += filter(None, [textfiles.best_effort(
            lambda: textfiles.record_backup_failure(target))])
        raise
    # The timer's run also refreshes the certificate facts: one schedule keeps both fresh.
    # (Imported here: certificate rotation's modules would slow every backup command.)
    from dcsctl.ops import rotation

    session.warnings += filter(None, [
        textfiles.best_effort(lambda: textfiles.record_backup(target, result)),
        textfiles.best_effort(
            lambda: textfiles.record_certificates(target, rotation.inventory(running))),
    ])
    manifest = result.backup.manifest
    if json_output:
        session.out.print_json(report.dump_json({
            "path": str(result.backup.path), "seconds": round(result.seconds, 3),
            "pruned": [str(p) for p in result.pruned], "manifest": manifest.__dict__,
        }))
        return
    session.out.print(
        f"Snapshot saved at {result.backup.path}\n"
        f"  from {manifest.member}, revision {manifest.revision}, "
        f"{manifest.key_count if manifest.key_count is not None else '?'} keys, "
        f"{report.human_bytes(manifest.db_size)} in {result.seconds:.2f} s, "
        f"sha256 {manifest.sha256[:16]}…",
        highlight=False,
    )
    for path in result.pruned:
        session.out.print(f"removed old backup {path}", highlight=False)


def _backup_to_store(ctx: typer.Context, target: Cluster, running: Cluster, *,
                     keep: int | None, max_age: dt.timedelta | None, json_output: bool) -> None:
    # Here, not at the top: the store brings in boto3 (~150 ms), which no other command needs.
    from dcsctl.ops import offsite, rotation

    session = session_of(ctx)
    try:
        result = offsite.take(target, keep=keep, max_age=max_age)
    except DcsctlError:
        session.warnings += filter(None, [textfiles.best_effort(
            lambda: textfiles.record_backup_failure(target))])
        raise
    manifest = result.backup.manifest
    local = backup_ops.BackupResult(backup_ops.Backup(Path(result.backup.name), manifest),
                                    result.seconds, ())
    session.warnings += filter(None, [
        textfiles.best_effort(lambda: textfiles.record_backup(target, local)),
        textfiles.best_effort(
            lambda: textfiles.record_certificates(target, rotation.inventory(running))),
    ])
    s3 = offsite.open_settings(target)
    where = f"{s3.endpoint}/{s3.bucket}/{s3.prefix}{target.spec.name}/{result.backup.object}"
    if json_output:
        session.out.print_json(report.dump_json({
            "object": result.backup.object, "url": where, "seconds": round(result.seconds, 3),
            "upload_seconds": round(result.upload_seconds, 3), "pruned": list(result.pruned),
            "aborted_uploads": result.aborted_uploads, "manifest": manifest.__dict__,
        }))
        return
    if result.aborted_uploads:
        session.err.print(f"aborted {result.aborted_uploads} unfinished upload(s) of an "
                          "earlier, interrupted backup", highlight=False)
    session.out.print(
        f"Snapshot sealed and stored at {where}\n"
        f"  from {manifest.member}, revision {manifest.revision}, "
        f"{manifest.key_count if manifest.key_count is not None else '?'} keys, "
        f"{report.human_bytes(manifest.db_size)} in {result.seconds:.2f} s "
        f"(upload {result.upload_seconds:.2f} s), sha256 {manifest.sha256[:16]}…",
        highlight=False,
    )
    for name in result.pruned:
        session.out.print(f"removed old backup {name} from the store", highlight=False)


def _uses_store(target: Cluster, directory: Path | None) -> bool:
    return directory is None and target.spec.backup is not None \
        and target.spec.backup.store is not None


@backup_app.command("list")
def list_(
    ctx: typer.Context, spec_file: SpecOption = None, cluster: ClusterOption = None,
    directory: DirOption = None, json_output: JsonOption = False,
) -> None:
    """Backups with their manifests, oldest first."""
    session = session_of(ctx)
    target = cluster_of(ctx, spec_file, cluster)
    if _uses_store(target, directory):
        _list_store(ctx, target, json_output=json_output)
        return
    listing = backup_ops.scan(target, directory)
    backups = listing.ours
    if json_output:
        session.out.print_json(report.dump_json(
            [{"path": str(b.path), **b.manifest.__dict__} for b in backups]
        ))
        return
    table = Table("FILE", "TAKEN", "MEMBER", "REVISION", "KEYS", "SIZE", "ETCD")
    for item in backups:
        m = item.manifest
        table.add_row(item.path.name, m.taken_at, m.member, str(m.revision),
                      str(m.key_count if m.key_count is not None else "?"),
                      report.human_bytes(m.db_size), m.etcd_version)
    session.out.print(table)
    if listing.others:
        session.err.print(
            f"{len(listing.others)} other snapshot(s) in that directory are not this "
            "cluster's (another cluster's, unsigned or altered manifest): not listed, never "
            "pruned", highlight=False)


def _list_store(ctx: typer.Context, target: Cluster, *, json_output: bool) -> None:
    from dcsctl.ops import offsite

    session = session_of(ctx)
    listing = offsite.scan(target)
    if json_output:
        session.out.print_json(report.dump_json(
            [{"object": b.object, **b.manifest.__dict__} for b in listing.ours]))
        return
    table = Table("BACKUP", "TAKEN", "MEMBER", "REVISION", "KEYS", "SIZE", "ETCD")
    for item in listing.ours:
        m = item.manifest
        table.add_row(item.name, m.taken_at, m.member, str(m.revision),
                      str(m.key_count if m.key_count is not None else "?"),
                      report.human_bytes(m.db_size), m.etcd_version)
    session.out.print(table)
    for item in listing.damaged:
        session.err.print(f"damaged: {item.name} (its snapshot object is missing or cut "
                          "short; never restored)", highlight=False)
    if listing.others:
        session.err.print(
            f"{len(listing.others)} other object(s) below {target.spec.name}/ in the store are "
            "not a complete backup of this cluster (another key's, altered, or an upload "
            "without its manifest): not listed, never pruned", highlight=False)


@backup_app.command("verify")
def verify_(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="a snapshot file, or a backup in the store "
                                        "(a name from `dcsctl backup list`)")],
    spec_file: SpecOption = None, cluster: ClusterOption = None,
) -> None:
    """Check a snapshot: etcd's hash, the manifest's sha256, `etcdutl snapshot status`;
    a stored backup is fetched and opened first (every chunk authenticated)."""
    target = cluster_of(ctx, spec_file, cluster)
    if _uses_store(target, None) and not Path(file).exists():
        from dcsctl.ops import offsite

        verified = offsite.verify(target, file)
    else:
        verified = backup_ops.verify(target, Path(file))
    session_of(ctx).out.print(
        f"OK: {file} — revision {verified.facts.revision}, {verified.facts.total_keys} "
        f"keys in the db, {report.human_bytes(verified.facts.total_size)}"
        + (f"; manifest {verified.signature.value}" if verified.signature
           else " (no manifest beside it)"),
        highlight=False,
    )


def _side_lines(title: str, side: Side, *, snapshot: bool) -> list[str]:
    def known(value: object) -> str:
        return "?" if value is None else str(value)

    users = "?" if side.users is None else (", ".join(side.users) or "none")
    fields = [f"cluster {known(side.cluster)}"
              + (f" ({side.cluster_id})" if side.cluster_id else "")]
    if snapshot:
        fields.append(f"taken at {known(side.taken_at)}")
    fields += [f"revision {known(side.revision)}", f"{known(side.key_count)} keys",
               f"users: {users}"]
    lines = [f"  {title:<10}{', '.join(fields)}"]
    if side.note:
        lines.append(f"  {'':<10}({side.note})")
    return lines


def _preview_text(target: str, preview: RestorePreview, file: Path) -> str:
    lines = [f"Restore {file} into cluster {target!r}:",
             *_side_lines("now:", preview.now, snapshot=False),
             *_side_lines("snapshot:", preview.snapshot, snapshot=True)]
    lines += [f"  warning: {reason} (--from-other-cluster)" for reason in preview.foreign]
    return "\n".join(lines)


@app.command(rich_help_panel=PROTECT)
def restore(
    ctx: typer.Context,
    file: Annotated[str | None, typer.Argument(
        help="a snapshot file, or a backup in the store (see `dcsctl backup list`)")] = None,
    spec_file: SpecOption = None,
    cluster: ClusterOption = None,
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

    target, running = clusters_of(ctx, spec_file, cluster)
    restore_ops.check_options(bump_revision=bump_revision, mark_compacted=mark_compacted)
    guard_patroni(ctx, running, "restore", accept_patroni_risk)
    if (file is None) == (not latest):
        raise UsageError("name one snapshot: a file, a backup in the store, or --latest",
                         fix="e.g. `dcsctl restore --latest` or `dcsctl restore FILE`")
    fetched = None
    if latest or (file is not None and _uses_store(target, None) and not Path(file).exists()):
        from dcsctl.ops import offsite

        # Opened and checked in full before the preview: a tampered object touches nothing.
        fetched = offsite.fetch(target, None if latest else file)
    path = fetched or Path(file or "")
    preview = restore_preview.preview(target, path, from_other_cluster=from_other_cluster,
                                      without_manifest=without_manifest)
    out = session_of(ctx).out
    out.print(_preview_text(target.spec.name, preview, path), highlight=False)
    if not yes and not typer.confirm(
        f"Replace the data of every member of {target.spec.name!r} with this snapshot?"
    ):
        raise DcsctlError("restore cancelled", fix="pass --yes to skip the question")
    result = restore_ops.restore(target, running, preview, keep_old=keep_old,
                                 bump_revision=bump_revision, mark_compacted=mark_compacted)
    if fetched is not None:
        from dcsctl.ops import offsite

        offsite.forget(fetched)  # kept until now: an interrupted restore resumes from it
    out.print(
        f"restored {result.cluster} ({result.cluster_id}) from {path.name}: "
        f"revision {result.revision}, {result.key_count} keys",
        highlight=False,
    )
    for change in result.changes:
        out.print(f"  {change}", highlight=False)


@backup_app.command("schedule")
def backup_schedule(
    ctx: typer.Context,
    spec_file: SpecOption = None,
    cluster: ClusterOption = None,
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
    session = session_of(ctx)
    target = cluster_of(ctx, spec_file, cluster)
    interval = textfiles.calendar_interval(target, on_calendar)  # a bad expression: nothing written
    result = schedule_ops.schedule(
        target, on_calendar=on_calendar, keep=keep,
        max_age=_age(max_age), directory=directory, unit_dir=unit_dir)
    session.warnings += filter(None, [
        textfiles.best_effort(lambda: textfiles.record_schedule(target, interval))])
    for path in result.units:
        session.out.print(f"wrote {path}", highlight=False)
    if result.enabled:
        session.out.print(f"enabled {result.timer}", highlight=False)
    else:
        session.out.print(f"to enable: {' '.join(result.enable_command)}", highlight=False)
