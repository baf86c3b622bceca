"""Backups as values: the manifest beside each snapshot, names, and which ones retention keeps.

A snapshot file is what etcd streams: the bolt database followed by the sha256 of it
(etcd appends the hash; `etcdutl snapshot restore` checks it). The manifest adds what a
restore needs to prove it worked: revision, live key count, users and roles.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from dcsctl.spec import ClusterSpec, digest_source

ETCD_HASH_BYTES = 32  # sha256 appended by etcd to a streamed snapshot
MANIFEST_VERSION = 1
_AGE = re.compile(r"^(\d+)([hdw])$")


@dataclass(frozen=True)
class Manifest:
    cluster: str
    cluster_id: str
    taken_at: str  # ISO 8601, UTC
    member: str
    endpoint: str
    etcd_version: str
    revision: int
    key_count: int | None  # live keys at `revision`; None if history was already compacted
    db_size: int
    # sha256 of the database: the very hash etcd appends to the stream, so one pass both
    # checks the stream and identifies the file (a corrupted or swapped file fails one).
    sha256: str
    spec_digest: str
    users: tuple[str, ...]
    roles: tuple[str, ...]
    format: int = MANIFEST_VERSION

    def to_json(self) -> bytes:
        data = asdict(self)
        data["users"], data["roles"] = list(self.users), list(self.roles)
        return (json.dumps(data, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, content: bytes) -> Manifest:
        data: dict[str, Any] = json.loads(content)
        data["users"] = tuple(data.get("users", ()))
        data["roles"] = tuple(data.get("roles", ()))
        return cls(**data)

    @property
    def taken(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.taken_at)


def spec_digest(spec: ClusterSpec) -> str:
    canonical = json.dumps(digest_source(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def snapshot_name(cluster: str, taken: dt.datetime) -> str:
    """`dcs-20261124T101500.123Z.db`: sorts by time; milliseconds keep quick backups apart."""
    return f"{cluster}-{taken.strftime('%Y%m%dT%H%M%S')}.{taken.microsecond // 1000:03d}Z.db"


def manifest_name(snapshot_name: str) -> str:
    return snapshot_name.removesuffix(".db") + ".json"


def etcd_hash_ok(body_digest: bytes, trailer: bytes) -> bool:
    """True if the appended trailer is the sha256 of everything before it."""
    return len(trailer) == ETCD_HASH_BYTES and body_digest == trailer


def parse_age(text: str) -> dt.timedelta:
    """'36h', '7d', '2w' -> a timedelta."""
    match = _AGE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not an age like 36h, 7d or 2w")
    amount, unit = int(match.group(1)), match.group(2)
    return {"h": dt.timedelta(hours=amount), "d": dt.timedelta(days=amount),
            "w": dt.timedelta(weeks=amount)}[unit]


def to_prune(
    backups: Sequence[Manifest],
    *,
    keep: int | None,
    max_age: dt.timedelta | None,
    now: dt.datetime,
) -> list[Manifest]:
    """Which backups retention removes: beyond the newest `keep`, or older than `max_age`.

    The newest backup is never removed, whatever the policy says: a retention typo must
    not leave a cluster with no backup at all.
    """
    newest_first = sorted(backups, key=lambda m: m.taken_at, reverse=True)
    doomed = []
    for index, manifest in enumerate(newest_first):
        if index == 0:
            continue
        too_many = keep is not None and index >= keep
        too_old = max_age is not None and now - manifest.taken > max_age
        if too_many or too_old:
            doomed.append(manifest)
    return doomed
