"""The backup commands' use cases (`backup`, `backup list`, `backup verify`, `restore`):
where a backup goes is decided here, once — the spec's store when it names one and no
`--dir` is given, a directory otherwise — and every backup, taken or failed, refreshes
dcsctl's facts for Prometheus (ops/textfiles.py).

The store's modules bring in boto3 and certificate rotation's bring in the PKI: each is
imported inside the function that needs it, so a plain `dcsctl backup` (run from a timer,
timed against etcdctl) loads neither.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dcsctl.errors import DcsctlError
from dcsctl.ops import backup, textfiles
from dcsctl.ops.cluster import Cluster

if TYPE_CHECKING:
    from dcsctl.ops.offsite import StoreBackupResult, StoreListing
    from dcsctl.ops.restore import RestoreResult
    from dcsctl.ops.restore_preview import RestorePreview


def uses_store(cluster: Cluster, directory: Path | None) -> bool:
    """Backups go to the spec's store unless a directory is named."""
    return directory is None and cluster.spec.backup_store is not None


@dataclass(frozen=True)
class Stored:
    """A backup sealed into the store, and the address it is at."""

    result: StoreBackupResult
    url: str


@dataclass(frozen=True)
class Taken:
    """What `dcsctl backup` did: a backup in a directory or in the store (one of the two),
    and the facts it could not write (warnings: the backup itself succeeded)."""

    local: backup.BackupResult | None
    stored: Stored | None
    warnings: tuple[str, ...]


def take(named: Cluster, running: Cluster, *, directory: Path | None, keep: int | None,
         max_age: dt.timedelta | None) -> Taken:
    """Take a verified backup, prune by the retention asked for, and record the backup's
    facts and the certificates' (the timer's run keeps both fresh). `running` is the
    cluster as it runs: its certificates are the ones to watch."""
    try:
        local, stored = (None, _take_to_store(named, keep, max_age)) \
            if uses_store(named, directory) \
            else (backup.take(named, directory=directory, keep=keep, max_age=max_age), None)
    except DcsctlError as error:
        if warning := textfiles.best_effort(lambda: textfiles.record_backup_failure(named)):
            error.add_note(warning)
        raise
    from dcsctl.ops import rotation

    facts = local or _as_local(stored)
    warnings = (textfiles.best_effort(lambda: textfiles.record_backup(named, facts)),
                textfiles.best_effort(lambda: textfiles.record_certificates(
                    named, rotation.inventory(running))))
    return Taken(local, stored, tuple(w for w in warnings if w))


def _take_to_store(cluster: Cluster, keep: int | None, max_age: dt.timedelta | None) -> Stored:
    from dcsctl.ops import offsite

    result = offsite.take(cluster, keep=keep, max_age=max_age)
    s3 = offsite.open_settings(cluster)
    return Stored(result, f"{s3.endpoint}/{s3.bucket}/{s3.prefix}{cluster.spec.name}/"
                          f"{result.backup.object}")


def _as_local(stored: Stored | None) -> backup.BackupResult:
    """A stored backup's facts as a local one's: node_exporter sees one kind of backup."""
    assert stored is not None  # take() made one of the two
    done = stored.result
    return backup.BackupResult(backup.Backup(Path(done.backup.name), done.backup.manifest),
                               done.seconds, ())


def listing(cluster: Cluster, directory: Path | None
            ) -> backup.BackupListing | StoreListing:
    """The cluster's backups, oldest first: the store's or a directory's."""
    if uses_store(cluster, directory):
        from dcsctl.ops import offsite

        return offsite.scan(cluster)
    return backup.scan(cluster, directory)


def verify(cluster: Cluster, file: str) -> backup.Verified:
    """A snapshot file, or a backup in the store by name (fetched and opened first)."""
    if uses_store(cluster, None) and not Path(file).exists():
        from dcsctl.ops import offsite

        return offsite.verify(cluster, file)
    return backup.verify(cluster, Path(file))


@dataclass(frozen=True)
class RestoreSource:
    """The snapshot a restore reads, and what it would do to the cluster."""

    path: Path
    fetched: bool  # from the store: kept until the restore finished, then forgotten
    preview: RestorePreview


def restore_source(named: Cluster, file: str | None, *, from_other_cluster: bool,
                   without_manifest: bool) -> RestoreSource:
    """A snapshot file, a backup in the store by name, or (None) the store's newest: a
    stored one is fetched, opened and checked in full before anything is previewed (a
    tampered object touches nothing)."""
    from dcsctl.ops import restore_preview

    fetched = None
    if file is None or (uses_store(named, None) and not Path(file).exists()):
        from dcsctl.ops import offsite

        fetched = offsite.fetch(named, file)
    path = fetched or Path(file or "")
    return RestoreSource(path, fetched is not None, restore_preview.preview(
        named, path, from_other_cluster=from_other_cluster, without_manifest=without_manifest))


def restore(named: Cluster, running: Cluster, source: RestoreSource, *, keep_old: bool,
            bump_revision: int, mark_compacted: bool) -> RestoreResult:
    """Rebuild every member from the previewed snapshot (ops/restore.py); a fetched copy
    is dropped only now: an interrupted restore resumes from it."""
    from dcsctl.ops import restore as restore_ops

    result = restore_ops.restore(named, running, source.preview, keep_old=keep_old,
                                 bump_revision=bump_revision, mark_compacted=mark_compacted)
    if source.fetched:
        from dcsctl.ops import offsite

        offsite.forget(source.path)
    return result
