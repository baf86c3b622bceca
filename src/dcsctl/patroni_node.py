"""The database node's side, as values: what Patroni reports, which of the node's TCP
connections are Patroni's to etcd, and the argv that makes Patroni open new ones.

How Patroni 4.1.5 takes in new etcd3 credentials (measured; tests/patroni/
test_node_credentials.py): its etcd3 client is one urllib3 PoolManager built at start
with the `cacert`/`cert`/`key` paths. urllib3 reads those files whenever it opens a new
connection; keep-alive connections and the watch stream stay open for as long as etcd
serves them. A reload (SIGHUP, `POST /reload`, `patronictl reload`) re-reads only
`username` and `password`: new paths are ignored until Patroni restarts, and files
replaced at the same paths are used only by the next new connection. So dcsctl replaces
the files atomically at the same paths, reloads (for the password), then aborts Patroni's
established connections to etcd (`ss -K`, the kernel's sock_destroy): the pooled ones are
found dropped and reopened on next use, the watch stream fails once and is rebuilt, all
with the new files. PostgreSQL and Patroni keep running; nothing is restarted.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# Patroni 4.1.1 authenticates for member discovery and lease keepalive: older Patroni
# cannot list members or keep its leader lease on an etcd with CVE-2026-33413's fix
# (3.5.28+, 3.6.9+) and auth on.
PATRONI_FLOOR = (4, 1, 1)

_PROCESS = re.compile(r'\("(?P<name>[^"]*)",pid=(?P<pid>\d+),fd=\d+\)')


@dataclass(frozen=True)
class Endpoint:
    address: str  # as ss prints it: 127.0.0.1, ::1, * or 0.0.0.0
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        address, _, port = text.rpartition(":")
        address = address.strip("[]").partition("%")[0]  # [::1]:8008, fe80::1%eth0
        return cls(address, int(port) if port.isdigit() else 0)

    def __str__(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else (
            f"{self.address}:{self.port}")

    @property
    def wildcard(self) -> bool:
        if self.address == "*":
            return True
        try:
            return ipaddress.ip_address(self.address).is_unspecified
        except ValueError:
            return False


@dataclass(frozen=True)
class Socket:
    state: str  # ss's words: LISTEN, ESTAB, ...
    local: Endpoint
    peer: Endpoint
    pids: frozenset[int]


def parse_sockets(text: str) -> list[Socket]:
    """`ss -H -t -a -n -p` output, one socket a line (lines without a process are kept)."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or not fields[1].isdigit():
            continue
        pids = frozenset(int(m.group("pid")) for m in _PROCESS.finditer(line))
        found.append(Socket(fields[0], Endpoint.parse(fields[3]), Endpoint.parse(fields[4]),
                            pids))
    return found


def rest_api_owner(sockets: Iterable[Socket], address: str, port: int) -> int | None:
    """The process listening on Patroni's REST API (address:port, or a wildcard address
    on that port): Patroni's own PID, which holds its etcd connections."""
    for sock in sockets:
        if (sock.state == "LISTEN" and sock.local.port == port and len(sock.pids) == 1
                and (sock.local.address == address or sock.local.wildcard)):
            return next(iter(sock.pids))
    return None


def etcd_connections(sockets: Iterable[Socket], pid: int,
                     etcd: Iterable[Endpoint]) -> list[Socket]:
    """Patroni's established connections to any etcd member's client endpoint."""
    wanted = set(etcd)
    return [s for s in sockets
            if s.state == "ESTAB" and pid in s.pids and s.peer in wanted]


def kill_argv(connections: Sequence[Socket]) -> list[str]:
    """`ss -K` for exactly these connections (each by its four-tuple)."""
    argv = ["ss", "-K", "-t", "-n"]
    for index, sock in enumerate(connections):
        if index:
            argv.append("or")
        argv += ["(", "src", str(sock.local), "and", "dst", str(sock.peer), ")"]
    return argv


# -- the bundle files on the host --

@dataclass(frozen=True)
class FileState:
    digest: str | None  # sha256 hex; None: missing
    mode: str | None  # octal, as stat prints it (600)
    owner: str | None  # user:group


def parse_file_states(text: str) -> dict[str, FileState]:
    """Lines of `<sha256> <mode> <user:group> <path>` or `- - - <path>`."""
    found = {}
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) != 4:
            continue
        digest, mode, owner, path = parts
        found[path] = (FileState(None, None, None) if digest == "-"
                       else FileState(digest, mode, owner))
    return found


# -- what Patroni says about itself (GET /patroni) --

@dataclass(frozen=True)
class NodeState:
    version: str
    role: str  # primary, replica, standby_leader, ... (Patroni 4 says primary)
    state: str  # running, stopped, starting, ...
    dcs_last_seen: int | None  # the node's clock, epoch seconds: its last good DCS read
    postmaster_start_time: str | None
    timeline: int | None

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return version_tuple(self.version)


def version_tuple(text: str) -> tuple[int, ...]:
    numbers = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", text)
    if numbers is None:
        return ()
    return tuple(int(n) for n in numbers.groups() if n is not None)


def parse_state(data: Mapping[str, object]) -> NodeState:
    """GET /patroni's JSON (Patroni 4.1.5: `patroni.version`, `role`, `state`,
    `dcs_last_seen`, `postmaster_start_time`, `timeline`)."""
    patroni = data.get("patroni")
    version = str(patroni.get("version", "")) if isinstance(patroni, Mapping) else ""
    seen = data.get("dcs_last_seen")
    timeline = data.get("timeline")
    started = data.get("postmaster_start_time")
    return NodeState(
        version=version, role=str(data.get("role", "")), state=str(data.get("state", "")),
        dcs_last_seen=seen if isinstance(seen, int) else None,
        postmaster_start_time=str(started) if started is not None else None,
        timeline=timeline if isinstance(timeline, int) else None,
    )


def http_date(value: str | None) -> int | None:
    """An HTTP Date header as epoch seconds: the node's own clock at answer time."""
    if not value:
        return None
    try:
        parsed = dt.datetime.strptime(value, "%a, %d %b %Y %H:%M:%S GMT")
    except ValueError:
        return None
    return int(parsed.replace(tzinfo=dt.UTC).timestamp())
