"""How backups, restores, their schedule and the state escrow look."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dcsctl.report import Listing, Output, human_bytes

if TYPE_CHECKING:
    from pathlib import Path

    from dcsctl.ops.backup import Backup, BackupListing, Verified
    from dcsctl.ops.backups import Taken
    from dcsctl.ops.escrow import Exported, Imported
    from dcsctl.ops.offsite import StoredBackup, StoreListing
    from dcsctl.ops.restore import RestoreResult
    from dcsctl.ops.restore_preview import RestorePreview, Side
    from dcsctl.ops.schedule import Schedule
    from dcsctl.snapshots import Manifest


def _keys(manifest: Manifest) -> str:
    return "?" if manifest.key_count is None else str(manifest.key_count)


def _summary(manifest: Manifest, seconds: float, upload: str = "") -> str:
    return (f"  from {manifest.member}, revision {manifest.revision}, {_keys(manifest)} keys, "
            f"{human_bytes(manifest.db_size)} in {seconds:.2f} s{upload}, "
            f"sha256 {manifest.sha256[:16]}…")


def backup_output(taken: Taken) -> Output:
    """`dcsctl backup`: where the snapshot went, what it holds, what was pruned."""
    if taken.stored is not None:
        done = taken.stored.result
        manifest = done.backup.manifest
        return Output(
            (f"Snapshot sealed and stored at {taken.stored.url}",
             _summary(manifest, done.seconds, f" (upload {done.upload_seconds:.2f} s)"),
             *(f"removed old backup {name} from the store" for name in done.pruned)),
            {"object": done.backup.object, "url": taken.stored.url,
             "seconds": round(done.seconds, 3), "upload_seconds": round(done.upload_seconds, 3),
             "pruned": list(done.pruned), "aborted_uploads": done.aborted_uploads,
             "manifest": manifest.__dict__},
            (f"aborted {done.aborted_uploads} unfinished upload(s) of an earlier, interrupted "
             "backup",) if done.aborted_uploads else ())
    assert taken.local is not None  # a backup is in the store or in a directory
    local = taken.local
    manifest = local.backup.manifest
    return Output(
        (f"Snapshot saved at {local.backup.path}", _summary(manifest, local.seconds),
         *(f"removed old backup {path}" for path in local.pruned)),
        {"path": str(local.backup.path), "seconds": round(local.seconds, 3),
         "pruned": [str(p) for p in local.pruned], "manifest": manifest.__dict__})


def _manifest_columns(first: str, name: Any) -> tuple[tuple[str, Any], ...]:
    return ((first, name), ("TAKEN", lambda b: b.manifest.taken_at),
            ("MEMBER", lambda b: b.manifest.member),
            ("REVISION", lambda b: str(b.manifest.revision)),
            ("KEYS", lambda b: _keys(b.manifest)),
            ("SIZE", lambda b: human_bytes(b.manifest.db_size)),
            ("ETCD", lambda b: b.manifest.etcd_version))


BACKUPS: Listing[Backup] = Listing(
    _manifest_columns("FILE", lambda b: b.path.name),
    lambda b: {"path": str(b.path), **b.manifest.__dict__})

STORED_BACKUPS: Listing[StoredBackup] = Listing(
    _manifest_columns("BACKUP", lambda b: b.name),
    lambda b: {"object": b.object, **b.manifest.__dict__})


def listing_output(listing: BackupListing | StoreListing, cluster: str) -> Output:
    """`dcsctl backup list`: a directory's backups of this cluster or the store's."""
    from dcsctl.ops.backup import BackupListing  # loaded already by the backup commands

    if isinstance(listing, BackupListing):
        return list_output(listing)
    return store_list_output(listing, cluster)


def list_output(listing: BackupListing) -> Output:
    """A directory's backups of this cluster, oldest first."""
    others = (f"{len(listing.others)} other snapshot(s) in that directory are not this "
              "cluster's (another cluster's, unsigned or altered manifest): not listed, never "
              "pruned",) if listing.others else ()
    return Output((BACKUPS.table(listing.ours),), BACKUPS.records(listing.ours), others)


def store_list_output(listing: StoreListing, cluster: str) -> Output:
    """The store's backups of this cluster, oldest first; damaged and foreign ones named."""
    notes = [f"damaged: {item.name} (its snapshot object is missing or cut short; never "
             "restored)" for item in listing.damaged]
    if listing.others:
        notes.append(f"{len(listing.others)} other object(s) below {cluster}/ in the store are "
                     "not a complete backup of this cluster (another key's, altered, or an "
                     "upload without its manifest): not listed, never pruned")
    return Output((STORED_BACKUPS.table(listing.ours),), STORED_BACKUPS.records(listing.ours),
                  tuple(notes))


def verify_output(file: str, verified: Verified) -> Output:
    facts = verified.facts
    manifest = (f"; manifest {verified.signature.value}" if verified.signature
                else " (no manifest beside it)")
    return Output((f"OK: {file} — revision {facts.revision}, {facts.total_keys} keys in the "
                   f"db, {human_bytes(facts.total_size)}{manifest}",))


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


def preview_output(cluster: str, preview: RestorePreview, file: Path) -> Output:
    """What a restore would replace with what, before it asks."""
    lines = [f"Restore {file} into cluster {cluster!r}:",
             *_side_lines("now:", preview.now, snapshot=False),
             *_side_lines("snapshot:", preview.snapshot, snapshot=True)]
    lines += [f"  warning: {reason} (--from-other-cluster)" for reason in preview.foreign]
    return Output(("\n".join(lines),))


def restored_output(result: RestoreResult, file: Path) -> Output:
    return Output((f"restored {result.cluster} ({result.cluster_id}) from {file.name}: "
                   f"revision {result.revision}, {result.key_count} keys",
                   *(f"  {change}" for change in result.changes)))


def schedule_output(result: Schedule) -> Output:
    enable = (f"enabled {result.timer}" if result.enabled
              else f"to enable: {' '.join(result.enable_command)}")
    return Output((*(f"wrote {path}" for path in result.units), enable))


def exported_output(done: Exported) -> Output:
    from dcsctl import escrow  # the escrow format brings in the KDF: `state export` only

    kinds = ", ".join(f"{count} {kind}" for kind, count in
                      sorted(escrow.summary(done.escrow).items()))
    return Output((f"escrow of {done.escrow.cluster} written to {done.path} "
                   f"({human_bytes(done.size)}: {kinds})"
                   + (f"\nalso stored at {done.stored_as}" if done.stored_as else "")
                   + "\nkeep the passphrase apart from the file: one without the other opens "
                   "nothing",))


def imported_output(done: Imported) -> Output:
    return Output((f"imported cluster {done.cluster} into {done.root}: {done.files} files, "
                   f"escrowed at {done.exported_at}",))
