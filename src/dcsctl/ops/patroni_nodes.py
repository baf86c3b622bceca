"""Patroni on a database host: make it reconnect to etcd, and watch it come back.

A reload alone leaves Patroni on its open connections (patroni_node's docstring has the
measurement), so after new files land dcsctl aborts Patroni's own connections to etcd
and waits until Patroni has read the DCS again on new ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dcsctl.errors import EnvironmentProblem
from dcsctl.hosts.protocol import Host
from dcsctl.patroni_node import (
    Endpoint,
    etcd_connections,
    kill_argv,
    parse_sockets,
    rest_api_owner,
)
from dcsctl.patroni_rest import Answer, PatroniApi
from dcsctl.wait import wait_until


@dataclass(frozen=True)
class Reconnected:
    pid: int  # Patroni's process
    aborted: int  # how many of its etcd connections were aborted
    node_time: int  # the node's clock right after: every later DCS read used new connections


def reconnect(host: Host, node: str, api: PatroniApi, rest: Endpoint,
              etcd: Sequence[Endpoint]) -> Reconnected:
    """Abort Patroni's established connections to etcd (found by the PID that listens on
    its REST API), so every later request opens a new one with the files now on disk."""
    listing = host.run(["ss", "-H", "-t", "-a", "-n", "-p"], timeout=30)
    if not listing.ok:
        raise EnvironmentProblem(
            f"{node}: `ss` failed ({listing.stderr.strip()[-200:]})",
            fix=f"install iproute2 on {node} (dcsctl uses `ss -K` to make Patroni reconnect)",
        )
    sockets = parse_sockets(listing.stdout)
    pid = rest_api_owner(sockets, rest.address, rest.port)
    if pid is None:
        raise EnvironmentProblem(
            f"{node}: no process listens on Patroni's REST API {rest} on {host.name}",
            fix="start Patroni there, or correct the node's rest_api in the spec",
        )
    connections = etcd_connections(sockets, pid, etcd)
    if connections:
        killed = host.run(kill_argv(connections), timeout=30)
        if not killed.ok:
            raise EnvironmentProblem(
                f"{node}: `ss -K` could not abort Patroni's connections to etcd "
                f"({killed.stderr.strip()[-200:]})",
                fix="dcsctl needs root on the database host (sudo) and a kernel with "
                "CONFIG_INET_DIAG_DESTROY (Debian's has it)",
            )
    after = api.state()
    return Reconnected(pid, len(connections), after.node_time or 0)


def seen_after(api: PatroniApi, node_time: int, timeout: float) -> Answer:
    """Wait until Patroni has read the DCS after `node_time` (its own clock, whole
    seconds: strictly later, so the read began after the reconnect)."""
    last: list[str] = []

    def check() -> Answer | None:
        try:
            answer = api.state()
        except EnvironmentProblem as exc:
            last[:] = [exc.message]
            return None
        seen = answer.state.dcs_last_seen
        last[:] = [f"dcs_last_seen {seen}, node clock {answer.node_time}, "
                   f"role {answer.state.role}"]
        return answer if seen is not None and seen > node_time else None

    return wait_until(check, timeout=timeout, what=f"{api.node}: Patroni did not reach the "
                      "DCS on new connections", interval=0.2, max_interval=1.0,
                      last_error=lambda: last[0] if last else "")
