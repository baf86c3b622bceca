"""Runs on the testbed's control side (`ip netns exec`), like agent.py:
  probe SPEC metrics    JSON {member: {"leader_changes": N, "rtt": {peer: [sum_s, count]}}}
                        from each member's /metrics (null for a member that did not answer)
  probe SPEC rtt        JSON {member: {"request_ms": M, "connect_ms": C}}: the median of 5
                        GET /version on one open TLS connection to its client port (what a
                        delay relay delays), and of 5 TCP connects to its peer port (what
                        preflight's rtt probe times: the handshake, which a relay does not)
  probe SPEC new-leader OLD SECONDS
                        prints `ready`, then polls the other members' own status every 20 ms
                        until one names a leader other than OLD: JSON {"leader", "at"}
                        (wall-clock time it was seen; null, null after SECONDS)

`etcd_server_leader_changes_seen_total` counts the leader changes a member saw;
`etcd_network_peer_round_trip_time_seconds` is etcd's own prober over the peer port: every
30 s (rafthttp's status monitor) etcd observes the prober's SMOOTHED round trip, so the
sum and count over a window give a mean that lags a change of delay by tens of seconds
(a window shorter than 30 s may hold no sample at all).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import statistics
import sys
import time
from urllib.parse import urlsplit

from dcsctl.etcd.model import EndpointStatus
from dcsctl.etcd.tls import _ssl_context, metrics_text
from tests.testbed.agent import cluster_of

_CHANGES = re.compile(r"^etcd_server_leader_changes_seen_total ([0-9.e+]+)$", re.M)
_RTT = re.compile(r'^etcd_network_peer_round_trip_time_seconds_(sum|count)\{To="([0-9a-f]+)"\}'
                  r" ([0-9.e+-]+)$", re.M)


def metrics(spec_file: str) -> dict[str, object]:
    cluster = cluster_of(spec_file)
    with cluster.admin_client(timeout=10) as client:
        names = {f"{m.id:x}": m.name for m in client.member_list(linearizable=False)}
    tls = cluster.admin_tls()
    found: dict[str, object] = {}
    for member in cluster.spec.members:
        try:
            text = metrics_text(cluster.spec.client_url(member), tls, timeout=5)
        except OSError:
            found[member.name] = None
            continue
        changes = _CHANGES.search(text)
        rtt: dict[str, list[float]] = {}
        for kind, peer, value in _RTT.findall(text):
            rtt.setdefault(names.get(peer, peer), [0.0, 0.0])[kind == "count"] = float(value)
        found[member.name] = {"leader_changes": float(changes.group(1)) if changes else 0.0,
                              "rtt": rtt}
    return found


def _timed(action: object, count: int = 5) -> float:
    """The median of `count` runs of `action()`, in ms."""
    assert callable(action)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _member_rtt(client_url: str, peer_url: str, context: ssl.SSLContext
                ) -> dict[str, float]:
    url, peer = urlsplit(client_url), urlsplit(peer_url)
    connection = http.client.HTTPSConnection(url.hostname or "", url.port, context=context,
                                             timeout=10)

    def get() -> None:
        connection.request("GET", "/version")
        connection.getresponse().read()

    def connect() -> None:
        socket.create_connection((peer.hostname, peer.port), timeout=10).close()

    try:
        get()  # the handshakes
        return {"request_ms": _timed(get), "connect_ms": _timed(connect)}
    finally:
        connection.close()


def rtts(spec_file: str) -> dict[str, object]:
    cluster = cluster_of(spec_file)
    context = _ssl_context(cluster.admin_tls())
    found: dict[str, object] = {}
    for member in cluster.spec.members:
        try:
            found[member.name] = _member_rtt(cluster.spec.client_url(member),
                                             cluster.spec.peer_url(member), context)
        except OSError:
            found[member.name] = None
    return found


def new_leader(spec_file: str, old: str, seconds: float) -> dict[str, object]:
    cluster = cluster_of(spec_file)
    others = [cluster.spec.client_url(m) for m in cluster.spec.members if m.name != old]
    with cluster.admin_client(timeout=0.5) as client:
        names = {m.id: m.name for m in client.member_list(linearizable=False)}
        old_id = next(i for i, name in names.items() if name == old)
        print("ready", flush=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for status in client.statuses(others):
                if isinstance(status, EndpointStatus) and status.leader_id not in (0, old_id):
                    return {"leader": names.get(status.leader_id), "at": time.time()}
            time.sleep(0.02)  # the polling cadence: this measures, it does not synchronise
    return {"leader": None, "at": None}


def main(argv: list[str]) -> None:
    spec_file, command, *rest = argv
    if command == "new-leader":
        print(json.dumps(new_leader(spec_file, rest[0], float(rest[1]))))
    elif command == "metrics":
        print(json.dumps(metrics(spec_file)))
    elif command == "rtt":
        print(json.dumps(rtts(spec_file)))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
