"""dcsctl's client across a leader kill: a put in flight when the leader dies is sent
again (etcd/client.py: put), so it is acknowledged once a new leader is there instead of
failing at the client's deadline."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable

from dcsctl.errors import DcsctlError
from dcsctl.etcd.model import EndpointStatus
from tests.support import cluster_of, poll, start_ticks
from tests.support.lab import LabCluster


def test_puts_in_flight_at_a_leader_kill_are_acknowledged(
        lab_factory: Callable[..., LabCluster]) -> None:
    lab = lab_factory()
    lab.ok("up")
    cluster = cluster_of(lab)
    acked: list[str] = []
    failed: list[str] = []
    stop = threading.Event()

    def write() -> None:
        # 5 s: longer than an election (1-2 s with etcd's defaults, 2.5 s seen on a busy
        # 2-core machine), shorter than the 7 s a member holds a put it forwarded to a
        # dead leader: without the resend, that put still fails here.
        with cluster.admin_client(timeout=5.0) as client:
            for index in range(20_000):  # bounded; stopped long before
                if stop.is_set():
                    return
                key = f"/kill/{index:05d}"
                try:
                    client.put(key, b"x")
                    acked.append(key)
                except DcsctlError as exc:
                    failed.append(f"{key}: {exc.message}")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        poll(lambda: len(acked) >= 50, 30, "50 acknowledged puts")
        with cluster.admin_client(timeout=2.0) as client:
            statuses = client.statuses()
        leader = next(m.name for m, s in zip(cluster.spec.members, statuses, strict=True)
                      if isinstance(s, EndpointStatus) and s.is_leader)
        record = json.loads(cluster.dir.pidfile(leader).read_text())
        assert start_ticks(int(record["pid"])) == int(record["start_ticks"])
        before = len(acked)
        os.kill(int(record["pid"]), signal.SIGKILL)
        poll(lambda: len(acked) >= before + 50, 30, "50 puts acknowledged after the kill")
    finally:
        stop.set()
        writer.join(timeout=30)
    # Without the resend, the put in flight at the kill fails with DEADLINE_EXCEEDED.
    assert failed == []
    with cluster.admin_client(timeout=10) as client:
        present = {kv.key for kv in client.get_prefix("/kill/", limit=0)}
    assert set(acked) <= present
