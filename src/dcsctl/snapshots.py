"""Backups as values: the manifest beside each snapshot, names, and which ones retention keeps.

A snapshot file is what etcd streams: the bolt database followed by the sha256 of it
(etcd appends the hash; `etcdutl snapshot restore` checks it). The manifest adds what a
restore needs to prove it worked: revision, live key count, users and roles.

A manifest is signed (HMAC-SHA256) with a key kept in the cluster's state dir, so a restore
can tell this cluster's backups from another cluster's, and an edited manifest from either.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from dcsctl.spec import ClusterSpec, digest_source

ETCD_HASH_BYTES = 32  # sha256 appended by etcd to a streamed snapshot
MANIFEST_VERSION = 2  # 2: signed (key_id, hmac_sha256)
_KEY_ID_LABEL = b"dcsctl manifest key id"
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
    key_id: str = ""  # which cluster key signed it (a keyed hash, not the key)
    hmac_sha256: str = ""  # over every other field; empty: unsigned (format 1)

    def _fields(self) -> dict[str, Any]:
        data = asdict(self)
        data["users"], data["roles"] = list(self.users), list(self.roles)
        return data

    def to_json(self) -> bytes:
        return (json.dumps(self._fields(), indent=2) + "\n").encode()

    def signed_bytes(self) -> bytes:
        """What the HMAC covers: every field but the HMAC itself, canonically encoded."""
        data = self._fields()
        del data["hmac_sha256"]
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, content: bytes) -> Manifest:
        data: dict[str, Any] = json.loads(content)
        data["users"] = tuple(data.get("users", ()))
        data["roles"] = tuple(data.get("roles", ()))
        return cls(**data)

    @property
    def taken(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.taken_at)


class Authenticity(enum.Enum):
    """What a manifest's signature says, checked with this cluster's key."""

    SIGNED_HERE = "signed by this cluster's key"
    SIGNED_ELSEWHERE = "signed by another cluster's key"
    UNSIGNED = "not signed (written before dcsctl signed its manifests, or stripped)"
    TAMPERED = "altered after it was signed"


def key_id(key: bytes) -> str:
    """Names a manifest key without revealing it."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


def sign(manifest: Manifest, key: bytes) -> Manifest:
    unsigned = replace(manifest, format=MANIFEST_VERSION, key_id=key_id(key), hmac_sha256="")
    mac = hmac.new(key, unsigned.signed_bytes(), hashlib.sha256).hexdigest()
    return replace(unsigned, hmac_sha256=mac)


def authenticity(manifest: Manifest, key: bytes | None) -> Authenticity:
    """`key` is this cluster's manifest key, None if it has none (a state dir never used)."""
    if not manifest.hmac_sha256:
        # A key id without a MAC is a signed manifest with its MAC cut off.
        return Authenticity.TAMPERED if manifest.key_id else Authenticity.UNSIGNED
    if key is None or manifest.key_id != key_id(key):
        return Authenticity.SIGNED_ELSEWHERE
    expected = hmac.new(key, manifest.signed_bytes(), hashlib.sha256).hexdigest()
    if hmac.compare_digest(expected, manifest.hmac_sha256):
        return Authenticity.SIGNED_HERE
    return Authenticity.TAMPERED


def foreign_reasons(
    manifest: Manifest, signature: Authenticity, *, cluster: str, cluster_ids: Collection[str],
) -> tuple[str, ...]:
    """Why a manifest is not this cluster's; empty when it is.

    `cluster_ids` are every ID this cluster has had (each restore founds a new one): a
    backup taken before an earlier restore is still this cluster's.
    """
    reasons = []
    if manifest.cluster != cluster:
        reasons.append(f"it is a backup of cluster {manifest.cluster!r}, this is {cluster!r}")
    if manifest.cluster_id and cluster_ids and manifest.cluster_id not in cluster_ids:
        reasons.append(f"it names cluster ID {manifest.cluster_id}, this cluster has had "
                       f"{', '.join(sorted(cluster_ids))}")
    if signature is Authenticity.SIGNED_ELSEWHERE:
        reasons.append("its manifest is signed by another cluster's key")
    return tuple(reasons)


def is_ours(manifest: Manifest, signature: Authenticity, *, cluster: str) -> bool:
    """A backup that `backup list` shows and retention may remove: signed here, our name."""
    return signature is Authenticity.SIGNED_HERE and manifest.cluster == cluster


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
