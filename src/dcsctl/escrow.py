"""The escrow of a control machine's state: one passphrase-sealed file that lets a new
machine administer the cluster (and restore its backups) after the old one is lost.

    MAGIC (8) | scrypt log2(n), r, p (1 byte each) | salt (16) | sealed payload

The key is scrypt(passphrase, salt): memory-hard (128 MiB, ~0.5 s at the defaults), so a
stolen escrow costs an attacker as much per guess. The payload is sealed (sealed.py) with
that key: a wrong passphrase fails the key-id check before any decryption is tried, a
changed byte fails authentication. The payload is JSON: the cluster's name, token and IDs,
and its state files (spec, CA, admin, JWT, manifest and backup keys, records, passwords)
with their modes — never etcd data.

Pure: bytes in, bytes out.
"""

from __future__ import annotations

import base64
import json
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from dcsctl import sealed
from dcsctl.errors import DcsctlError

MAGIC = b"DCSESCR1"
HEADER = struct.Struct(">8sBBB16s")
FORMAT = 1
SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P = 17, 8, 1  # 128 MiB (RFC 7914's interactive+ setting)
# An escrow names its own cost: bounded, so a crafted file cannot make import allocate
# gigabytes.
_MIN_LOG2_N, _MAX_LOG2_N = 14, 20
MIN_PASSPHRASE = 12


class EscrowInvalid(DcsctlError):
    """An escrow that must not be imported: wrong passphrase, damaged, or not one."""


@dataclass(frozen=True)
class StateFile:
    path: str  # relative to the cluster's state folder, '/'-separated
    mode: int
    content: bytes = b""


@dataclass(frozen=True)
class Escrow:
    cluster: str
    token: str
    cluster_ids: tuple[str, ...]
    exported_at: str  # ISO 8601, UTC
    files: tuple[StateFile, ...]

    def file(self, path: str) -> StateFile | None:
        return next((f for f in self.files if f.path == path), None)


def _key(passphrase: bytes, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=sealed.KEY_BYTES, n=1 << log2_n, r=r, p=p).derive(passphrase)


def check_passphrase(passphrase: bytes) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise EscrowInvalid(
            f"the passphrase has {len(passphrase)} characters; an escrow needs at least "
            f"{MIN_PASSPHRASE} (it guards the CA key and every password)",
            fix="use a longer passphrase, e.g. five random words")


def _payload(escrow: Escrow) -> bytes:
    return json.dumps({
        "format": FORMAT, "cluster": escrow.cluster, "token": escrow.token,
        "cluster_ids": list(escrow.cluster_ids), "exported_at": escrow.exported_at,
        "files": [{"path": f.path, "mode": f.mode,
                   "content": base64.b64encode(f.content).decode()} for f in escrow.files],
    }, sort_keys=True).encode()


def seal(escrow: Escrow, passphrase: bytes, *, log2_n: int = SCRYPT_LOG2_N) -> bytes:
    check_passphrase(passphrase)
    salt = secrets.token_bytes(16)
    key = _key(passphrase, salt, log2_n, SCRYPT_R, SCRYPT_P)
    return (HEADER.pack(MAGIC, log2_n, SCRYPT_R, SCRYPT_P, salt)
            + sealed.seal_bytes(key, _payload(escrow)))


def _safe_path(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and all(p not in ("", ".", "..")
                                                            for p in parts)


def open_sealed(data: bytes, passphrase: bytes, *, what: str) -> Escrow:
    """The escrow in `data`, or EscrowInvalid naming why not (nothing is written here)."""
    if len(data) < HEADER.size or data[:8] != MAGIC:
        raise EscrowInvalid(f"{what} is not a dcsctl escrow", fix="name the file that "
                            "`dcsctl state export` wrote")
    _, log2_n, r, p, salt = HEADER.unpack(data[:HEADER.size])
    if not (_MIN_LOG2_N <= log2_n <= _MAX_LOG2_N and r == SCRYPT_R and p == SCRYPT_P):
        raise EscrowInvalid(f"{what} names an unexpected key-derivation cost (damaged?)",
                            fix="use another copy of the escrow")
    key = _key(passphrase, salt, log2_n, r, p)
    body = data[HEADER.size:]
    header = sealed.parse_header(body, what=what)
    if header.key_id != sealed.key_id(key):
        raise EscrowInvalid(f"wrong passphrase for {what} (or its header is damaged)",
                            fix="give the passphrase used by `dcsctl state export`")
    try:
        raw = json.loads(sealed.open_bytes(key, body, what=what))
        files = tuple(StateFile(str(f["path"]), int(f["mode"]) & 0o777,
                                base64.b64decode(f["content"], validate=True))
                      for f in raw["files"])
        escrow = Escrow(str(raw["cluster"]), str(raw["token"]), tuple(raw["cluster_ids"]),
                        str(raw["exported_at"]), files)
    except sealed.SealedInvalid as exc:
        raise EscrowInvalid(f"{what} is damaged: {exc.message}",
                            fix="use another copy of the escrow") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise EscrowInvalid(f"{what} opened but its content is not an escrow ({exc})",
                            fix="use another copy of the escrow") from exc
    if int(raw.get("format", 0)) != FORMAT or not all(_safe_path(f.path) for f in files):
        raise EscrowInvalid(f"{what} holds an unknown format or unsafe paths",
                            fix="use an escrow written by this dcsctl")
    return escrow


def summary(escrow: Escrow) -> Mapping[str, int]:
    """How many files of each kind (pki, secrets, ...) an escrow holds: for the report."""
    counts: dict[str, int] = {}
    for f in escrow.files:
        kind = f.path.split("/")[0] if "/" in f.path else "records"
        counts[kind] = counts.get(kind, 0) + 1
    return counts
