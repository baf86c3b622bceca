"""`backup`, `backup list`, `backup verify`, retention: snapshots a restore can trust.

A backup is streamed from a healthy member (admin by client certificate), written to a
temporary file, fsynced, checked (etcd's appended sha256, then `etcdutl snapshot
status`), and only then renamed into place beside its manifest, signed with the cluster's
manifest key. `backup list` and retention only ever see this cluster's backups (signed here,
under its name), so a directory shared by several clusters is safe.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dcsctl import snapshots
from dcsctl.errors import ClusterUnhealthy, DcsctlError, EnvironmentProblem, NotFound
from dcsctl.etcd.client import EtcdClient
from dcsctl.etcd.model import EndpointStatus
from dcsctl.files import atomic_write, private_dir
from dcsctl.ops.cluster import Cluster
from dcsctl.snapshots import Authenticity, Manifest
from dcsctl.state import PRIVATE, locked
from dcsctl.wait import wait_until

# Long enough to wait out a leader election (etcd's election timeout is 1 s by default).
ELECTION_S = 6.0
PROGRESS_EVERY_S = 0.1


class SnapshotInvalid(DcsctlError):
    """A snapshot file that must not be restored."""


@dataclass(frozen=True)
class Backup:
    path: Path
    manifest: Manifest


@dataclass(frozen=True)
class BackupResult:
    backup: Backup
    seconds: float
    pruned: tuple[Path, ...]


@dataclass(frozen=True)
class SnapshotFacts:
    """What `etcdutl snapshot status` says about a snapshot file."""

    revision: int
    total_keys: int
    total_size: int
    hash: int


def default_dir(cluster: Cluster) -> Path:
    return cluster.dir.root / "backups"


class _HashingSink:
    """Writes chunks to a file and hashes all but the last 32 bytes: the database whose
    sha256 etcd appends to the stream. Reports progress at most every PROGRESS_EVERY_S
    (etcd sends 32 KiB chunks: thousands per snapshot, far more than a bar can show)."""

    def __init__(self, handle: BinaryIO, cluster: Cluster, expected: int | None) -> None:
        self.handle = handle
        self.body = hashlib.sha256()
        self.tail = b""
        self.size = 0
        self.progress = cluster.context.progress
        self.expected = expected
        self._next_report = 0.0

    def __call__(self, chunk: bytes) -> None:
        self.handle.write(chunk)
        self.size += len(chunk)
        keep = snapshots.ETCD_HASH_BYTES
        if len(chunk) >= keep:
            # What was held back is now certainly database, not the appended hash.
            self.body.update(self.tail)
            self.body.update(memoryview(chunk)[:-keep])
            self.tail = chunk[-keep:]
        else:
            combined = self.tail + chunk
            self.body.update(combined[:-keep])
            self.tail = combined[-keep:]
        now = time.monotonic()
        if now >= self._next_report:
            self._next_report = now + PROGRESS_EVERY_S
            self.progress.transfer("snapshot", self.size, self.expected)

    def finished(self) -> None:
        """The stream ended: show the final count (it also takes the bar down)."""
        self.progress.transfer("snapshot", self.size, self.size)

    def etcd_hash_ok(self) -> bool:
        return snapshots.etcd_hash_ok(self.body.digest(), self.tail)


def _etcdutl(cluster: Cluster) -> Path:
    etcdutl = cluster.binaries.etcdutl
    if etcdutl is None:
        raise EnvironmentProblem(
            f"etcdutl is not next to {cluster.binaries.etcd}",
            fix="install etcdutl (Debian's etcd-server package has it; scripts/setup does)",
        )
    return etcdutl


def snapshot_facts(cluster: Cluster, path: Path) -> SnapshotFacts:
    result = cluster.host.run(
        [str(_etcdutl(cluster)), "snapshot", "status", str(path), "-w", "json"]
    )
    if result.returncode != 0:
        raise SnapshotInvalid(
            f"{path} is not a readable etcd snapshot: "
            f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}",
            fix="take a new backup with `dcsctl backup`, or restore another file",
        )
    data = json.loads(result.stdout)
    return SnapshotFacts(int(data["revision"]), int(data["totalKey"]), int(data["totalSize"]),
                         int(data["hash"]))


def _pick_member(cluster: Cluster) -> tuple[str, EndpointStatus]:
    """A healthy member to stream from, a follower if there is one (spares the leader).

    Waits out a leader election (a few seconds) before it calls quorum lost.
    """
    seen: list[str] = []

    def healthy_members() -> list[tuple[bool, str, EndpointStatus]] | None:
        with cluster.admin_client(timeout=3.0) as client:
            statuses, healths = client.survey()
        seen[:] = [f"{h.endpoint}: {h.error}" for h in healths if not h.healthy]
        found = [
            (status.is_leader, member.name, status)
            for member, health, status in zip(cluster.spec.members, healths, statuses,
                                              strict=True)
            if health.healthy and isinstance(status, EndpointStatus)
        ]
        return found or None

    try:
        candidates = wait_until(healthy_members, timeout=cluster.context.deadline(ELECTION_S),
                                what="no member became healthy")
    except ClusterUnhealthy as exc:
        raise ClusterUnhealthy(
            f"no member of {cluster.spec.name!r} is healthy, so no consistent snapshot can be "
            f"taken (quorum lost?): {'; '.join(seen)}",
            fix="start the stopped members (`dcsctl up`) and check `dcsctl status`",
        ) from exc
    _, name, status = sorted(candidates, key=lambda c: (c[0], c[1]))[0]
    return name, status


def _count_at(client: EtcdClient, revision: int) -> int | None:
    try:
        return client.count_keys(revision=revision)
    except DcsctlError:
        return None  # history at that revision already compacted


def _users_and_roles(client: EtcdClient) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(sorted(client.user_roles())), tuple(sorted(client.role_names()))


def take(
    cluster: Cluster,
    *,
    directory: Path | None = None,
    keep: int | None = None,
    max_age: dt.timedelta | None = None,
) -> BackupResult:
    """Stream, check, then rename into place. What need not wait runs beside the rest:
    finding etcdutl (`etcd --version`) during the survey, users and roles during the
    stream, the fsync and the key count during `etcdutl snapshot status`."""
    started = time.monotonic()
    record = cluster.dir.record()
    target_dir = private_dir(directory or default_dir(cluster))
    with locked(cluster.dir), ThreadPoolExecutor(2, thread_name_prefix="dcsctl-backup") as pool:
        key = cluster.dir.manifest_key(create=True)
        assert key is not None  # create=True made it
        tools = pool.submit(_etcdutl, cluster)
        member_name, status = _pick_member(cluster)
        endpoint = cluster.spec.client_url(cluster.spec.member(member_name))
        tools.result()  # without etcdutl, refuse now rather than after the whole stream
        with cluster.admin_client() as client:
            auth = pool.submit(_users_and_roles, client)
            taken = cluster.context.clock()
            fd, tmp_name = tempfile.mkstemp(prefix=".snapshot-", suffix=".partial",
                                            dir=target_dir)
            tmp = Path(tmp_name)
            try:
                os.fchmod(fd, PRIVATE)
                with os.fdopen(fd, "wb") as handle:
                    sink = _HashingSink(handle, cluster, status.db_size)
                    client.snapshot(endpoint, sink)
                    sink.finished()
                    handle.flush()
                    if not sink.etcd_hash_ok():
                        raise SnapshotInvalid(
                            f"the snapshot streamed from {member_name} failed etcd's sha256 "
                            "check",
                            fix="run `dcsctl backup` again; if it repeats, check that "
                            "member's disk",
                        )
                    synced = pool.submit(os.fsync, handle.fileno())
                    # Counted at the member's revision before the stream: the snapshot's,
                    # unless writes came in meanwhile (then counted again below).
                    counted = pool.submit(_count_at, client, status.revision)
                    try:
                        # etcdutl reads the file through the page cache: no need to wait
                        # for the disk, only for the fsync to succeed before the rename.
                        facts = snapshot_facts(cluster, tmp)
                    finally:
                        synced.result()
                key_count = (counted.result() if facts.revision == status.revision
                             else _count_at(client, facts.revision))
                users, roles = auth.result()
                final = target_dir / snapshots.snapshot_name(cluster.spec.name, taken)
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
    manifest = Manifest(
        cluster=cluster.spec.name,
        cluster_id=record.cluster_id or "",
        taken_at=taken.isoformat(),
        member=member_name,
        endpoint=endpoint,
        etcd_version=status.version,
        revision=facts.revision,
        key_count=key_count,
        db_size=sink.size,
        sha256=sink.body.hexdigest(),
        spec_digest=snapshots.spec_digest(cluster.spec),
        users=users,
        roles=roles,
    )
    manifest = snapshots.sign(manifest, key)
    atomic_write(final.with_name(snapshots.manifest_name(final.name)), manifest.to_json(), PRIVATE)
    pruned = prune(cluster, directory=target_dir, keep=keep, max_age=max_age)
    return BackupResult(Backup(final, manifest), time.monotonic() - started, pruned)


@dataclass(frozen=True)
class BackupListing:
    ours: tuple[Backup, ...]  # oldest first
    # Snapshots in the directory that are not this cluster's: another cluster's, unsigned
    # (older dcsctl), tampered, or without a readable manifest. Never listed or pruned.
    others: tuple[Path, ...]


def _read_manifest(path: Path) -> Manifest | None:
    try:
        return Manifest.from_json(path.read_bytes())
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def scan(cluster: Cluster, directory: Path | None = None) -> BackupListing:
    """Sort a backup directory's snapshots into this cluster's and the rest."""
    key = cluster.dir.manifest_key(create=False)
    ours, others = [], []
    for snapshot in sorted((directory or default_dir(cluster)).glob("*.db")):
        manifest = _read_manifest(snapshot.with_suffix(".json"))
        if manifest is not None and snapshots.is_ours(
            manifest, snapshots.authenticity(manifest, key), cluster=cluster.spec.name
        ):
            ours.append(Backup(snapshot, manifest))
        else:
            others.append(snapshot)
    return BackupListing(tuple(sorted(ours, key=lambda b: b.manifest.taken_at)),
                         tuple(others))


def list_backups(cluster: Cluster, directory: Path | None = None) -> list[Backup]:
    """This cluster's backups (snapshot + manifest signed here), oldest first."""
    return list(scan(cluster, directory).ours)


def prune(
    cluster: Cluster,
    *,
    directory: Path | None = None,
    keep: int | None,
    max_age: dt.timedelta | None,
) -> tuple[Path, ...]:
    if keep is None and max_age is None:
        return ()
    backups = list_backups(cluster, directory)
    by_manifest = {id(b.manifest): b for b in backups}
    doomed = snapshots.to_prune([b.manifest for b in backups], keep=keep, max_age=max_age,
                                now=cluster.context.clock())
    removed = []
    for manifest in doomed:
        backup = by_manifest[id(manifest)]
        backup.path.unlink(missing_ok=True)
        backup.path.with_suffix(".json").unlink(missing_ok=True)
        removed.append(backup.path)
    return tuple(removed)


@dataclass(frozen=True)
class Verified:
    path: Path
    facts: SnapshotFacts
    manifest: Manifest | None
    signature: Authenticity | None  # None: no manifest


def _checked_manifest(cluster: Cluster, path: Path) -> tuple[Manifest | None, Authenticity | None]:
    """The manifest beside `path` and what its signature says; refuses a tampered one."""
    manifest_path = path.with_suffix(".json")
    if not manifest_path.exists():
        return None, None
    manifest = _read_manifest(manifest_path)
    if manifest is None:
        raise SnapshotInvalid(
            f"{manifest_path} is not a dcsctl manifest (unreadable or altered)",
            fix="restore another backup (`dcsctl backup list`); if you trust the snapshot "
            "itself, move the manifest away and pass --without-manifest",
        )
    signature = snapshots.authenticity(manifest, cluster.dir.manifest_key(create=False))
    if signature is Authenticity.TAMPERED:
        raise SnapshotInvalid(
            f"{manifest_path} was {signature.value}: its HMAC does not match",
            fix="never restore this backup; restore another one (`dcsctl backup list`) and "
            "find out who can write to the backup directory",
        )
    return manifest, signature


def verify(cluster: Cluster, path: Path) -> Verified:
    """Check a snapshot file end to end; raise SnapshotInvalid naming what is wrong."""
    if not path.is_file():
        raise NotFound(f"no snapshot file {path}", fix="see `dcsctl backup list`")
    manifest, signature = _checked_manifest(cluster, path)
    body = hashlib.sha256()
    size = path.stat().st_size
    if size <= snapshots.ETCD_HASH_BYTES:
        raise SnapshotInvalid(f"{path} is only {size} bytes: truncated",
                              fix="restore another backup (`dcsctl backup list`)")
    with path.open("rb") as handle:
        remaining = size - snapshots.ETCD_HASH_BYTES
        while remaining > 0:
            chunk = handle.read(min(remaining, 1 << 20))
            if not chunk:
                break
            body.update(chunk)
            remaining -= len(chunk)
        trailer = handle.read()
    if not snapshots.etcd_hash_ok(body.digest(), trailer):
        raise SnapshotInvalid(
            f"{path} fails etcd's integrity hash: the file is truncated or corrupted",
            fix="restore another backup (`dcsctl backup list`); never restore this one",
        )
    if manifest is not None and manifest.sha256 != body.hexdigest():
        raise SnapshotInvalid(
            f"{path} does not match the sha256 in {path.with_suffix('.json').name}",
            fix="the file was replaced or damaged after the backup: restore another one",
        )
    facts = snapshot_facts(cluster, path)
    if manifest is not None and facts.revision != manifest.revision:
        raise SnapshotInvalid(
            f"{path} holds revision {facts.revision}, its manifest says {manifest.revision}",
            fix="restore another backup (`dcsctl backup list`)",
        )
    return Verified(path, facts, manifest, signature)
