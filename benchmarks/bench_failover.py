"""Failover as dcsctl's client sees it: SIGKILL of the etcd leader to the first write
acknowledged after it, next to the time the members took to elect a new leader.

    .venv/bin/python benchmarks/bench_failover.py [--kills 20] [--timeout 2.0]

One lab cluster (127.0.94.10-12, its own DCSCTL_HOME). A writer thread puts keys one after
the other through dcsctl's EtcdClient (etcd/client.py, `timeout` as the fault tests' writer
uses: 2 s). Per kill: wait for 50 acknowledged writes, find the leader from the members'
own status, SIGKILL it (its PID from dcsctl's pidfile, start time checked), then time
(a) until another member reports itself leader (polled every 20 ms, the reference) and
(b) until the writer's first acknowledgement after the kill; then `dcsctl up` brings the
member back (untimed). At the end every acknowledged key is read back (a lost one fails
the run). Results: a markdown table on stdout, benchmarks/out/failover.json. Every wait is
bounded; the cluster is destroyed at the end, pass or fail.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import BIN, OUT, REPO, clean_environ, poll, run
from tests.support import start_ticks

from dcsctl.errors import DcsctlError
from dcsctl.etcd.model import EndpointStatus
from dcsctl.ops.cluster import Cluster, Context
from dcsctl.spec import parse

IPS = ("127.0.94.10", "127.0.94.11", "127.0.94.12")
NAME = "failbench"
PREFIX = "/failover/"
MAX_WRITES = 200_000


class Writer(threading.Thread):
    """Puts PREFIX+n one after the other; records each acknowledgement's time."""

    def __init__(self, cluster: Cluster, timeout: float, seconds: float) -> None:
        super().__init__(daemon=True)
        self.cluster, self.timeout, self.seconds = cluster, timeout, seconds
        self.acked: list[tuple[str, float]] = []
        self.failed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with self.cluster.admin_client(timeout=self.timeout) as client:
            for index in range(MAX_WRITES):
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                key = f"{PREFIX}{index:07d}"
                try:
                    client.put(key, b"x")
                except DcsctlError:
                    self.failed += 1
                    continue
                self.acked.append((key, time.monotonic()))


def leader(cluster: Cluster, exclude: str | None = None) -> str | None:
    with cluster.admin_client(timeout=0.5) as client:
        statuses = client.statuses()
    for member, status in zip(cluster.spec.members, statuses, strict=True):
        if isinstance(status, EndpointStatus) and status.is_leader and member.name != exclude:
            return member.name
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=2.0)
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    env = clean_environ()
    env["DCSCTL_HOME"] = str(scratch / "home")
    env["DCSCTL_ETCD_BIN_DIR"] = str(BIN)
    spec_file = scratch / "failover.yaml"
    spec_file.write_text(f"name: {NAME}\ndomain: patroni.test\nmembers:\n" + "".join(
        f"  - {{name: {NAME}-{i}, address: {ip}}}\n" for i, ip in enumerate(IPS)))
    dcsctl = str(BIN / "dcsctl")
    cluster = Context(env).cluster(parse(spec_file.read_text()))
    rounds = []
    load_start = os.getloadavg()[0]
    try:
        run([dcsctl, "up", "-f", str(spec_file)], env=env)
        writer = Writer(cluster, options.timeout, seconds=60 + 30 * options.kills)
        writer.start()
        for _ in range(options.kills):
            target = len(writer.acked) + 50
            poll(lambda t=target: len(writer.acked) >= t, what="50 more acks", timeout=60)
            name = leader(cluster)
            assert name is not None, "no leader before the kill"
            pidfile = json.loads(cluster.dir.pidfile(name).read_text())
            pid, ticks = int(pidfile["pid"]), int(pidfile["start_ticks"])
            assert start_ticks(pid) == ticks, "the leader's pidfile names another process"
            acks_before = len(writer.acked)
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            poll(lambda n=name: leader(cluster, exclude=n) is not None, what="a new leader",
                 timeout=30, interval=0.02)
            new_leader_s = time.monotonic() - killed_at
            poll(lambda b=acks_before: len(writer.acked) > b, what="an ack", timeout=30)
            first_ack_s = writer.acked[acks_before][1] - killed_at
            rounds.append({"killed": name, "new_leader_s": new_leader_s,
                           "first_ack_s": first_ack_s})
            print(json.dumps(rounds[-1]), file=sys.stderr)
            run([dcsctl, "up", "-f", str(spec_file)], env=env)  # the member rejoins
        writer.stop.set()
        writer.join(timeout=30)
        with cluster.admin_client(timeout=10) as client:
            present = {kv.key for kv in client.get_prefix(PREFIX, limit=0)}
        lost = [key for key, _ in writer.acked if key not in present]
    finally:
        run([dcsctl, "destroy", "--yes", "-f", str(spec_file)], env=env)
        shutil.rmtree(scratch, ignore_errors=True)
    load_end = os.getloadavg()[0]
    leaders = [r["new_leader_s"] for r in rounds]
    acks = [r["first_ack_s"] for r in rounds]
    gaps = [r["first_ack_s"] - r["new_leader_s"] for r in rounds]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "failover.json").write_text(json.dumps(
        {"kills": options.kills, "timeout": options.timeout, "load": [load_start, load_end],
         "rounds": rounds, "acked": len(writer.acked), "failed": writer.failed,
         "lost": len(lost), "repo": str(REPO)}, indent=2))
    print(f"{options.kills} kills, client timeout {options.timeout} s; load average "
          f"{load_start:.2f} at start, {load_end:.2f} at end")
    print(f"acknowledged {len(writer.acked)}, failed at the client {writer.failed}, "
          f"acknowledged but lost {len(lost)}\n")
    print("| | median | max |")
    print("|---|---|---|")
    print(f"| kill → new leader (members' status) | {statistics.median(leaders):.2f} s | "
          f"{max(leaders):.2f} s |")
    print(f"| kill → first acknowledged write | **{statistics.median(acks):.2f} s** | "
          f"{max(acks):.2f} s |")
    print(f"| new leader → first acknowledged write | {statistics.median(gaps):.2f} s | "
          f"{max(gaps):.2f} s |")
    print(f"\ngoal: first ack ≤ 1.5 s median: "
          f"{'met' if statistics.median(acks) <= 1.5 else 'NOT met'}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
