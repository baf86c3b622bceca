"""etcd's own etcdctl as the client of dcsctl's quick paths (`get`, `put`).

Measured on the 2-core lab machine: a Python process that imports grpc is ~30 MiB and
~0.1 s old before it sends a byte (the cygrpc extension alone), and etcd3aio adds ~7 MiB;
etcdctl answers `get` in ~0.01 s with 18 MiB. So the quick paths hand one request to the
etcdctl of the cluster's etcd (the one `dcsctl env` puts on PATH), as root by the admin
certificate's CN, exactly as `eval "$(dcsctl env)"; etcdctl get KEY` would. Nothing here
words an error: when etcdctl fails, the quick path gives the command to the full client,
whose errors name cause and fix.

Start-up time is the point of this module, so it imports only `os` (already loaded when
Python starts): no subprocess (threading, selectors, signal), no dataclasses (inspect),
no pathlib, no json on the plain paths; each costs milliseconds on a busy machine.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing itself costs milliseconds; mypy knows this name
if TYPE_CHECKING:
    from collections.abc import Mapping

# The full client's per-request timeout (EtcdClient's default), as etcdctl's flag.
COMMAND_TIMEOUT = "5s"
_MAGIC = "dcsctl etcdctl profile 1"


class EtcdctlFailed(Exception):
    """etcdctl did not answer as expected (exit status, or output it could not parse)."""


class EtcdctlProfile:
    """How to reach a cluster as admin with etcdctl; paths only, no secret.

    `ca_files`: the first that exists is trusted (a CA rotation's bundle, else the CA),
    decided at each run, as the full client's ClusterDir.trusted_cas does. Stored as
    NUL-separated text (no path holds a NUL), so reading it needs no json.
    """

    __slots__ = ("ca_files", "cert", "endpoints", "etcdctl", "key")

    def __init__(self, etcdctl: str, endpoints: tuple[str, ...], ca_files: tuple[str, ...],
                 cert: str, key: str) -> None:
        self.etcdctl = etcdctl
        self.endpoints = endpoints
        self.ca_files = ca_files
        self.cert = cert
        self.key = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EtcdctlProfile) and self.dump() == other.dump()

    def __hash__(self) -> int:
        return hash(self.dump())

    def dump(self) -> bytes:
        fields = [_MAGIC, self.etcdctl, self.cert, self.key, str(len(self.ca_files)),
                  *self.ca_files, *self.endpoints]
        return "\0".join(fields).encode()

    @classmethod
    def load(cls, content: bytes) -> EtcdctlProfile:
        fields = content.decode().split("\0")
        if len(fields) < 6 or fields[0] != _MAGIC:
            raise ValueError("not a dcsctl etcdctl profile")
        count = int(fields[4])
        ca_files, endpoints = fields[5:5 + count], fields[5 + count:]
        if not ca_files or not endpoints:
            raise ValueError("profile without CA or endpoints")
        return cls(fields[1], tuple(endpoints), tuple(ca_files), fields[2], fields[3])

    def cacert(self) -> str | None:
        return next((name for name in self.ca_files if os.path.exists(name)), None)

    def usable(self) -> bool:
        """Every file it names is there (a destroyed cluster's profile is not)."""
        return (self.cacert() is not None and os.access(self.etcdctl, os.X_OK)
                and os.path.exists(self.cert) and os.path.exists(self.key))

    def argv(self) -> list[str]:
        return [self.etcdctl, "--endpoints=" + ",".join(self.endpoints),
                f"--cacert={self.cacert()}", f"--cert={self.cert}", f"--key={self.key}",
                f"--command-timeout={COMMAND_TIMEOUT}"]


def _run(profile: EtcdctlProfile, argv: list[str], environ: Mapping[str, str]) -> bytes:
    """etcdctl's stdout; its stderr is dropped (a failure goes to the full client, which
    says what went wrong in dcsctl's words)."""
    # An exported ETCDCTL_USER (or any ETCDCTL_*) would change who etcdctl is: the flags
    # say everything.
    env = {k: v for k, v in environ.items() if not k.startswith("ETCDCTL_")}
    read_end, write_end = os.pipe()
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        pid = os.posix_spawn(profile.argv()[0], [*profile.argv(), *argv], env, file_actions=[
            (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, write_end, 1),
            (os.POSIX_SPAWN_DUP2, devnull, 2), (os.POSIX_SPAWN_CLOSE, read_end)])
    finally:
        os.close(write_end)
        os.close(devnull)
    chunks = []
    try:
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise EtcdctlFailed(f"etcdctl exited {os.waitstatus_to_exitcode(status)}")
    return b"".join(chunks)


def get_value(profile: EtcdctlProfile, key: str, environ: Mapping[str, str]) -> bytes | None:
    """A linearizable read of one key's value (etcdctl's default), as the full client's
    `get`; None: no such key. etcdctl prints the value and a newline, or nothing."""
    out = _run(profile, ["get", "--print-value-only", "--", key], environ)
    if not out:
        return None
    if not out.endswith(b"\n"):
        raise EtcdctlFailed("unexpected answer from etcdctl get")
    return out[:-1]


def get_json(profile: EtcdctlProfile, key: str, environ: Mapping[str, str]
             ) -> dict[str, object] | None:
    """The key with its revisions, as `dcsctl get --json` shows it; None: no such key."""
    import base64
    import json

    out = _run(profile, ["-w", "json", "get", "--", key], environ)
    try:
        kvs = json.loads(out).get("kvs") or []
        if not kvs:
            return None
        kv = kvs[0]
        return {"key": base64.b64decode(kv["key"]).decode(errors="replace"),
                "value": base64.b64decode(kv.get("value", "")).decode(errors="replace"),
                "create_revision": int(kv["create_revision"]),
                "mod_revision": int(kv["mod_revision"]), "version": int(kv["version"])}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EtcdctlFailed("unexpected answer from etcdctl get -w json") from exc


def put(profile: EtcdctlProfile, key: str, value: str, environ: Mapping[str, str]) -> None:
    if _run(profile, ["put", "--", key, value], environ).strip() != b"OK":
        raise EtcdctlFailed("unexpected answer from etcdctl put")
