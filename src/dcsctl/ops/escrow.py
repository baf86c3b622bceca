"""`dcsctl state export|import`: the control machine's state, escrowed and brought back.

What is escrowed is everything in the cluster's state folder that a new control machine
needs, and nothing that is etcd's or can be made again: member data dirs, logs and pid
files (members/), local backups, fetched or scratch snapshots, the lock and an unfinished
restore's progress stay behind. Import writes into a hidden folder beside the target and
renames it into place only when every file is written: a refused or interrupted import
leaves nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dcsctl import escrow as escrow_format
from dcsctl.errors import EnvironmentProblem, NotFound
from dcsctl.escrow import Escrow, EscrowInvalid, StateFile
from dcsctl.files import atomic_write, private_dir
from dcsctl.ops import escrow_status
from dcsctl.ops.cluster import Cluster
from dcsctl.state import PRIVATE, PUBLIC, ClusterDir, ClusterRecord, locked

# Top-level entries of a cluster folder that are never escrowed.
LEFT_BEHIND = ("members", "backups", "from-store", "lock", "restore.json", "escrow.json")
LEFT_BEHIND_PREFIXES = ("store-upload-", ".")
RECORD = escrow_status.RECORD


def _escrowed(relative: Path) -> bool:
    top = relative.parts[0]
    return top not in LEFT_BEHIND and not top.startswith(LEFT_BEHIND_PREFIXES)


def collect(directory: ClusterDir, now: dt.datetime) -> Escrow:
    record = directory.record()
    files = []
    for path in sorted(directory.root.rglob("*")):
        relative = path.relative_to(directory.root)
        if path.is_file() and not path.is_symlink() and _escrowed(relative):
            files.append(StateFile(relative.as_posix(), path.stat().st_mode & 0o777,
                                   path.read_bytes()))
    return Escrow(record.name, record.token, record.cluster_ids(), now.isoformat(),
                  tuple(files))


@dataclass(frozen=True)
class Exported:
    path: Path
    escrow: Escrow
    size: int
    stored_as: str | None  # the store's URL, when also sent there


def export(cluster: Cluster, out: Path, passphrase: bytes, *, to_store: bool = False,
           log2_n: int = escrow_format.SCRYPT_LOG2_N) -> Exported:
    escrow_format.check_passphrase(passphrase)
    with locked(cluster.dir):
        if cluster.spec.backup_store is not None:
            # Made now if no backup made it yet: the escrow must open every later backup.
            cluster.dir.backup_key(create=True)
        cluster.dir.manifest_key(create=True)
        now = cluster.context.clock()  # after the keys: the escrow covers them
        escrow = collect(cluster.dir, now)
        data = escrow_format.seal(escrow, passphrase, log2_n=log2_n)
        atomic_write(out, data, PRIVATE)
        stored_as = None
        if to_store:
            from dcsctl.ops import offsite

            name = f"{cluster.spec.name}/escrow/{cluster.spec.name}-" \
                   f"{now.strftime('%Y%m%dT%H%M%S')}.escrow"
            offsite.open_store(cluster).put(name, data)
            s3 = offsite.open_settings(cluster)
            stored_as = f"{s3.endpoint}/{s3.bucket}/{s3.prefix}{name}"
        atomic_write(cluster.dir.root / RECORD, json.dumps({
            "exported_at": escrow.exported_at, "covers": escrow.exported_at,
            "sha256": hashlib.sha256(data).hexdigest(),
            "file": str(out.resolve()), "store": stored_as}, indent=2).encode() + b"\n",
            PUBLIC)
    return Exported(out, escrow, len(data), stored_as)


def read_passphrase_file(path: Path) -> bytes:
    """A passphrase from a file only its owner can read (never from argv)."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError as exc:
        raise NotFound(f"no passphrase file {path}",
                       fix="write the passphrase into a file with mode 0600, or omit "
                       "--passphrase-file to be asked") from exc
    if mode & 0o077:
        raise EnvironmentProblem(f"the passphrase file {path} is readable by others "
                                 f"(mode {mode:04o})", fix=f"chmod 600 {path}")
    return path.read_bytes().rstrip(b"\r\n")


def newest_in_store(cluster: Cluster) -> tuple[str, bytes]:
    from dcsctl.ops import offsite

    store = offsite.open_store(cluster)
    found = sorted(o.key for o in store.list(f"{cluster.spec.name}/escrow/")
                   if o.key.endswith(".escrow"))
    if not found:
        raise NotFound(f"the store holds no escrow of cluster {cluster.spec.name!r}",
                       fix="export one with `dcsctl state export --to-store` on the old machine")
    return found[-1], store.get(found[-1])


@dataclass(frozen=True)
class Imported:
    cluster: str
    root: Path
    files: int
    exported_at: str


def import_(home: Path, data: bytes, passphrase: bytes, *, what: str,
            expected_cluster: str | None, now: dt.datetime) -> Imported:
    """Open, check, then write the whole state folder at once (hidden folder + rename)."""
    escrow = escrow_format.open_sealed(data, passphrase, what=what)
    if expected_cluster is not None and escrow.cluster != expected_cluster:
        raise EscrowInvalid(
            f"{what} is the escrow of cluster {escrow.cluster!r}, not {expected_cluster!r}",
            fix="import the escrow of this cluster (or drop -f/--cluster to import it as "
            f"{escrow.cluster!r})")
    target = ClusterDir(home, escrow.cluster)
    if target.root.exists() and any(p.name != "lock" for p in target.root.iterdir()):
        existing = target.record() if target.exists() else None
        same = existing is not None and existing.token == escrow.token
        raise EscrowInvalid(
            f"{target.root} already holds "
            + ("this cluster's state" if same else
               f"another cluster's state (token {existing.token if existing else '?'}, "
               f"the escrow's is {escrow.token})"),
            fix="import into a fresh DCSCTL_HOME (the state there is kept as it is)")
    if escrow.file("cluster.json") is None:
        raise EscrowInvalid(f"{what} has no cluster record", fix="use another escrow")
    ClusterRecord.from_json(escrow.file("cluster.json").content)  # type: ignore[union-attr]
    private_dir(home)
    staging = Path(tempfile.mkdtemp(prefix=f".import-{escrow.cluster}-", dir=home))
    try:
        for item in escrow.files:
            path = staging / item.path
            private_dir(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, item.mode or PRIVATE)
            with os.fdopen(fd, "wb") as handle:
                handle.write(item.content)
                handle.flush()
                os.fsync(handle.fileno())
        # The imported state is exactly what the escrow holds: covered up to the files
        # just written (their modification times are the import's).
        written = max((p.stat().st_mtime for p in staging.rglob("*") if p.is_file()),
                      default=0.0)
        covers = max(now, dt.datetime.fromtimestamp(written, dt.UTC))
        (staging / RECORD).write_bytes(json.dumps({
            "exported_at": escrow.exported_at, "covers": covers.isoformat(),
            "imported_from": what}, indent=2).encode() + b"\n")
        if target.root.exists():  # only a lock file (checked above)
            shutil.rmtree(target.root)
        os.replace(staging, target.root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Imported(escrow.cluster, target.root, len(escrow.files), escrow.exported_at)
