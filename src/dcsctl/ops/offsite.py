"""Backups in an S3 store: sealed upload, listing, verify, retention, fetch for restore.

In the store, below `<prefix><cluster>/`, each backup is two objects:

    <cluster>-<time>.db.sealed         the snapshot, sealed (sealed.py) with the state dir's
                                 backup key, uploaded in parallel multipart parts
    <cluster>-<time>.manifest.sealed   written only after the snapshot object is complete and
                                 its size checked: the signed manifest plus the object's
                                 name and sealed size, sealed too

A backup is listed only when its manifest opens with this cluster's backup key, is signed
with this cluster's manifest key under this cluster's name, and the snapshot object is
there at exactly the sealed size. A killed upload leaves no object (S3 lists only complete
multipart uploads) and no manifest; the next backup aborts the unfinished upload. Objects
that are not this cluster's are never listed, fetched for restore, or deleted.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dcsctl import sealed, snapshots
from dcsctl.errors import DcsctlError, NotFound
from dcsctl.files import atomic_write, private_dir
from dcsctl.ops import backup as backup_ops
from dcsctl.ops.cluster import Cluster
from dcsctl.snapshots import Manifest
from dcsctl.spec import S3Store
from dcsctl.state import PRIVATE, locked
from dcsctl.store import Store

SNAPSHOT_SUFFIX = ".sealed"  # after the snapshot's own name, which ends in .db
MANIFEST_SUFFIX = ".manifest.sealed"
RECORD_FORMAT = 1


def open_settings(cluster: Cluster) -> S3Store:
    store = cluster.spec.backup_store
    if store is None:
        raise DcsctlError(f"cluster {cluster.spec.name!r} has no backup store",
                          fix="add backup.store.s3 to the spec (see docs/backup.md)")
    return store.s3


def open_store(cluster: Cluster, *, timeout_s: float | None = None) -> Store:
    return Store(open_settings(cluster), timeout_s=timeout_s)


def _folder(cluster: Cluster) -> str:
    return f"{cluster.spec.name}/"


@dataclass(frozen=True)
class StoredBackup:
    name: str  # the snapshot's name, e.g. dcs-20261205T181500.123Z.db
    manifest: Manifest
    sealed_size: int

    @property
    def object(self) -> str:
        return self.name + SNAPSHOT_SUFFIX

    @property
    def manifest_object(self) -> str:
        return manifest_object(self.name)


def manifest_object(name: str) -> str:
    return name.removesuffix(".db") + MANIFEST_SUFFIX


@dataclass(frozen=True)
class StoreListing:
    ours: tuple[StoredBackup, ...]  # oldest first
    # This cluster's manifests whose snapshot object is missing or not the size sealed
    # (cut short, or replaced): never restored, named in listings.
    damaged: tuple[StoredBackup, ...]
    # Objects below this cluster's folder that are not a complete backup of it: another
    # key's, tampered, or a snapshot without its manifest. Never listed or deleted.
    others: tuple[str, ...]


@dataclass(frozen=True)
class StoreBackupResult:
    backup: StoredBackup
    seconds: float
    upload_seconds: float
    pruned: tuple[str, ...]
    aborted_uploads: int


CHUNKS_PER_PART = 2  # 2 x 4 MiB sealed chunks: ~8 MiB parts, boto3's own default size


def sealed_parts(path: Path, sealer: sealed.Sealer,
                 chunks_per_part: int = CHUNKS_PER_PART) -> list[Callable[[], bytes]]:
    """The sealed form of the file at `path` as multipart parts, each made on demand from
    its own range of the file: part k holds sealed chunks k*m .. k*m+m-1 (the header goes
    before the first). Chunk i's nonce is its index, so parts seal independently."""
    size = path.stat().st_size
    chunk = sealer.chunk_bytes
    last_index = size // chunk  # the final chunk (shorter, possibly empty)
    count = last_index // chunks_per_part + 1

    def part(number: int) -> bytes:
        cipher = sealer.cipher()
        first = number * chunks_per_part
        indexes = range(first, min(first + chunks_per_part, last_index + 1))
        out = [sealer.header] if number == 0 else []
        with path.open("rb") as handle:
            handle.seek(first * chunk)
            for index in indexes:
                data = handle.read(chunk)
                out.append(sealer.seal_at(cipher, index, data, last=index == last_index))
        return b"".join(out)

    return [functools.partial(part, number) for number in range(count)]


def _record(manifest: Manifest, name: str, size: int) -> bytes:
    return json.dumps({"format": RECORD_FORMAT, "object": name + SNAPSHOT_SUFFIX,
                       "sealed_size": size, "manifest": json.loads(manifest.to_json())},
                      sort_keys=True).encode()


def take(cluster: Cluster, *, keep: int | None = None,
         max_age: dt.timedelta | None = None) -> StoreBackupResult:
    """A verified local snapshot (backup.take, in a private scratch folder), sealed and
    streamed to the store, then its manifest; retention last, on this cluster's objects."""
    started = time.monotonic()
    store = open_store(cluster)
    with locked(cluster.dir):
        # Fail on a missing bucket or bad keys before a snapshot is streamed at all.
        store.check()
        # Under the cluster lock no other upload of ours is running: anything unfinished
        # was left by a killed backup.
        aborted = store.abort_uploads(_folder(cluster))
        key = cluster.dir.backup_key(create=True)
        assert key is not None  # create=True made it
        scratch = Path(tempfile.mkdtemp(prefix="store-upload-", dir=private_dir(cluster.dir.root)))
        try:
            local = backup_ops.take(cluster, directory=scratch)
            name = local.backup.path.name
            upload_started = time.monotonic()
            store.upload_parts(_folder(cluster) + name + SNAPSHOT_SUFFIX,
                               sealed_parts(local.backup.path, sealed.Sealer(key)))
            upload_seconds = time.monotonic() - upload_started
            expected = sealed.sealed_size(local.backup.path.stat().st_size)
            stored = {o.key: o.size for o in store.list(_folder(cluster) + name)}
            if stored.get(_folder(cluster) + name + SNAPSHOT_SUFFIX) != expected:
                raise DcsctlError(
                    f"the store holds {stored.get(_folder(cluster) + name + SNAPSHOT_SUFFIX)} "
                    f"bytes of {name}{SNAPSHOT_SUFFIX}, {expected} were sent",
                    fix="run the backup again; if it repeats, check the store's disk")
            manifest = local.backup.manifest
            store.put(_folder(cluster) + manifest_object(name),
                      sealed.seal_bytes(key, _record(manifest, name, expected)))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        pruned = prune(cluster, store, keep=keep, max_age=max_age)
    return StoreBackupResult(StoredBackup(name, manifest, expected),
                             time.monotonic() - started, upload_seconds, pruned, aborted)


def scan(cluster: Cluster, store: Store | None = None) -> StoreListing:
    """Sort the objects below this cluster's folder into its complete backups and the rest."""
    store = store or open_store(cluster)
    backup_key = cluster.dir.backup_key(create=False)
    manifest_key = cluster.dir.manifest_key(create=False)
    objects = {o.key.removeprefix(_folder(cluster)): o.size
               for o in store.list(_folder(cluster))}
    ours: list[StoredBackup] = []
    damaged: list[StoredBackup] = []
    claimed: set[str] = set()
    for entry in sorted(objects):
        if not entry.endswith(MANIFEST_SUFFIX) or backup_key is None:
            continue
        name = entry.removesuffix(MANIFEST_SUFFIX) + ".db"
        try:
            record = json.loads(sealed.open_bytes(
                backup_key, store.get(_folder(cluster) + entry), what=entry))
            manifest = Manifest.from_json(json.dumps(record["manifest"]).encode())
            size = int(record["sealed_size"])
        except (sealed.SealedInvalid, ValueError, TypeError, KeyError):
            continue
        signature = snapshots.authenticity(manifest, manifest_key)
        if not (snapshots.is_ours(manifest, signature, cluster=cluster.spec.name)
                and record.get("object") == name + SNAPSHOT_SUFFIX):
            continue
        backup = StoredBackup(name, manifest, size)
        (ours if objects.get(backup.object) == size else damaged).append(backup)
        claimed |= {entry, backup.object}
    others = tuple(sorted(set(objects) - claimed))
    return StoreListing(tuple(sorted(ours, key=lambda b: b.manifest.taken_at)),
                        tuple(damaged), others)


def prune(cluster: Cluster, store: Store, *, keep: int | None,
          max_age: dt.timedelta | None) -> tuple[str, ...]:
    """Retention in the store: only this cluster's complete backups, manifest first (a
    backup without its manifest is no longer listed, whatever happens next)."""
    if keep is None and max_age is None:
        return ()
    backups = scan(cluster, store).ours
    by_manifest = {id(b.manifest): b for b in backups}
    doomed = snapshots.to_prune([b.manifest for b in backups], keep=keep, max_age=max_age,
                                now=cluster.context.clock())
    removed = []
    for manifest in doomed:
        backup = by_manifest[id(manifest)]
        store.delete([_folder(cluster) + backup.manifest_object,
                      _folder(cluster) + backup.object])
        removed.append(backup.name)
    return tuple(removed)


def _refuse_damaged(backup: StoredBackup, held: int | None) -> sealed.SealedInvalid:
    return sealed.SealedInvalid(
        f"backup {backup.name} in the store is damaged: its snapshot object holds "
        f"{'nothing' if held is None else f'{held} bytes'}, {backup.sealed_size} were sealed "
        "(cut short or replaced)",
        fix="never restore it; restore an older backup by name (`dcsctl backup list`) and "
        "find out who can write to the bucket")


def _pick(listing: StoreListing, name: str | None,
          sizes: dict[str, int]) -> StoredBackup:
    candidates = sorted((*listing.ours, *listing.damaged), key=lambda b: b.manifest.taken_at)
    if not candidates:
        raise NotFound("the store holds no backup of this cluster",
                       fix="take one with `dcsctl backup` (`dcsctl backup list` shows them)")
    wanted = (candidates[-1].name if name is None
              else name.removesuffix(SNAPSHOT_SUFFIX).removesuffix(".db") + ".db")
    for backup in candidates:
        if backup.name == wanted:
            if backup in listing.damaged:
                # Even for --latest: silently restoring an older backup would lose data
                # the operator believes is safe.
                raise _refuse_damaged(backup, sizes.get(backup.object))
            return backup
    raise NotFound(f"no backup of this cluster named {name!r} in the store",
                   fix="pick one from `dcsctl backup list`")


def fetch_dir(cluster: Cluster) -> Path:
    return cluster.dir.root / "from-store"


def fetch(cluster: Cluster, name: str | None) -> Path:
    """Download and open one backup (the newest if `name` is None) into the state dir: the
    snapshot with its manifest beside it, ready for backup.verify and restore. Every chunk's
    tag is checked while it streams into a private temporary file, and the file is renamed
    into place only after the final chunk checked: a tampered, reordered or truncated object
    leaves nothing behind and touches nothing."""
    store = open_store(cluster)
    listing = scan(cluster, store)
    sizes = {o.key.removeprefix(_folder(cluster)): o.size for o in store.list(_folder(cluster))}
    backup = _pick(listing, name, sizes)
    key = cluster.dir.backup_key(create=False)
    assert key is not None  # scan listed it: the key opened its manifest
    directory = private_dir(fetch_dir(cluster))
    final = directory / backup.name
    fd, tmp_name = tempfile.mkstemp(prefix=f".{backup.name}.", dir=directory)
    try:
        os.fchmod(fd, PRIVATE)
        opener = sealed.Opener(key, what=f"{_folder(cluster)}{backup.object}")
        with os.fdopen(fd, "wb") as handle:
            for piece in store.chunks(_folder(cluster) + backup.object):
                for plain in opener.feed(piece):
                    handle.write(plain)
            handle.write(opener.close())
            handle.flush()
            os.fsync(handle.fileno())
        atomic_write(final.with_suffix(".json"), backup.manifest.to_json(), PRIVATE)
        os.replace(tmp_name, final)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return final


def verify(cluster: Cluster, name: str) -> backup_ops.Verified:
    """Fetch, open and check a stored backup end to end; nothing is kept."""
    path = fetch(cluster, name)
    try:
        return backup_ops.verify(cluster, path)
    finally:
        forget(path)


def forget(path: Path) -> None:
    """Remove a fetched snapshot and its manifest (after a restore or verify)."""
    path.unlink(missing_ok=True)
    path.with_suffix(".json").unlink(missing_ok=True)
