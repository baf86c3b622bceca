"""Runs on the testbed's control side (`ip netns exec`), where the hosts are reachable:
  agent SPEC write PREFIX COUNT MAX_SECONDS [INTERVAL]   sequential puts, at most one per
                                              INTERVAL s; `ack KEY` / `fail KEY ...` lines
  agent SPEC keys PREFIX                      JSON list of the keys under PREFIX (linearizable)
  agent SPEC hashes                           JSON {endpoint: hashkv} at one revision
  agent SPEC history PREFIX PATH MAX_SECONDS  the recorded workload (tests/support/history.py)
                                              under PREFIX: `ready` after 20 acknowledged
                                              writes; each stdin line `wait SINCE_NS COUNT
                                              TIMEOUT_S` answered `ok N` / `short N` (writes
                                              called since SINCE_NS, monotonic, and acked);
                                              stdin closed or MAX_SECONDS: the history is
                                              written to PATH, a JSON summary printed, exit 1
                                              if a client crashed
  agent SPEC patroni SCOPE API MAX_SECONDS    a JSON line every 0.5 s: Patroni's role (its REST
                                              API) and its leader key and lease TTL in etcd;
                                              ends when stdin closes or after MAX_SECONDS
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from dcsctl.errors import DcsctlError
from dcsctl.ops.cluster import Cluster
from tests.support import SpecFileIn
from tests.support import cluster_of as support_cluster_of
from tests.support.history import Workload, cluster_connect


def cluster_of(spec_file: str) -> Cluster:
    return support_cluster_of(SpecFileIn(dict(os.environ), Path(spec_file)))


def write(cluster: Cluster, prefix: str, count: int, max_seconds: float,
          interval: float = 0.0) -> None:
    """Bounded in count and time. A failed (e.g. timed-out) put is reported as `fail`: it
    may still have been committed, so it is never counted as acknowledged or lost.
    `interval` paces it (a rate, like a Patroni's, not a wait for anything): a writer
    flat out takes a core of the two the testbed's hosts share."""
    start = time.monotonic()
    deadline = start + max_seconds
    client = cluster.admin_client(timeout=2.0)
    try:
        for index in range(count):
            if time.monotonic() > deadline:
                break
            key = f"{prefix}{index:06d}"
            if interval:
                time.sleep(max(0.0, start + index * interval - time.monotonic()))
            try:
                client.put(key, b"x")
                print("ack", key, f"{time.time():.3f}", flush=True)
            except DcsctlError as exc:
                print("fail", key, exc.message.replace("\n", " "), flush=True)
                client.close()
                client = cluster.admin_client(timeout=2.0)
    finally:
        client.close()
    print("done", flush=True)


def record_history(spec_file: str, prefix: str, path: str, max_seconds: float) -> int:
    """Bounded in time (MAX_SECONDS) and count (the workload's own bound)."""
    workload = Workload(cluster_connect(lambda: cluster_of(spec_file)), prefix, Path(path),
                        max_seconds=max_seconds)
    failure = ""
    try:
        workload.__enter__()
        workload.wait_acked(20, timeout=60)
    except (AssertionError, TimeoutError) as exc:  # reported below, with the history written
        failure = f"not ready: {exc}"
    else:
        print("ready", flush=True)
        while workload.alive():
            ready, _, _ = select.select([sys.stdin], [], [], 0.5)
            if not ready:
                continue
            line = sys.stdin.readline()
            if not line:
                break
            _, since, count, timeout = line.split()
            try:
                workload.wait_acked(int(count), int(since), float(timeout))
                print("ok", workload.acked_writes(int(since)), flush=True)
            except (TimeoutError, AssertionError):
                print("short", workload.acked_writes(int(since)), flush=True)
    try:
        workload.stop()
    except AssertionError as exc:
        failure = failure or str(exc)
    summary = workload.summary()
    print(json.dumps({"operations": summary.operations, "acked_writes": summary.acked_writes,
                      "unknown": summary.unknown, "failed": summary.failed,
                      "failures": dict(workload.failures), "error": failure}), flush=True)
    return 1 if failure else 0


def watch_patroni(cluster: Cluster, scope: str, api: str, max_seconds: float) -> None:
    """Bounded in time; the test ends it earlier by closing stdin. Each sample is taken as
    it comes: an etcd read that times out shows as an error, not as a missing sample."""
    deadline = time.monotonic() + max_seconds
    client = cluster.admin_client(timeout=2.0)
    try:
        while time.monotonic() < deadline:
            sample: dict[str, object] = {"t": time.time()}
            try:
                with urllib.request.urlopen(f"{api}/patroni", timeout=2) as response:
                    state = json.loads(response.read())
                sample.update(role=state.get("role"), state=state.get("state"),
                              pg_start=state.get("postmaster_start_time"),
                              timeline=state.get("timeline"))
            except (urllib.error.URLError, OSError, ValueError) as exc:
                sample.update(role="unreachable", api_error=str(exc))
            try:
                lock = client.get(f"/service/{scope}/leader")
                sample["lock"] = lock.value.decode() if lock is not None else None
                sample["ttl"] = client.lease_ttl_of(f"/service/{scope}/leader")
            except DcsctlError as exc:
                sample["etcd_error"] = exc.message
                client.close()
                client = cluster.admin_client(timeout=2.0)
            print(json.dumps(sample), flush=True)
            ready, _, _ = select.select([sys.stdin], [], [], 0.5)  # the pace, and the stop
            if ready and not sys.stdin.readline():
                break
    finally:
        client.close()


def main(argv: list[str]) -> None:
    spec_file, command, *rest = argv
    cluster = cluster_of(spec_file)
    if command == "write":
        write(cluster, rest[0], int(rest[1]), float(rest[2]), *map(float, rest[3:4]))
        return
    if command == "history":
        raise SystemExit(record_history(spec_file, rest[0], rest[1], float(rest[2])))
    if command == "patroni":
        watch_patroni(cluster, rest[0], rest[1], float(rest[2]))
        return
    with cluster.admin_client(timeout=10) as client:
        if command == "keys":
            answer: object = [kv.key for kv in client.get_prefix(rest[0], limit=0)]
        elif command == "hashes":
            revision = client.revision()
            answer = {url: client.hash_kv(url, revision)[0] for url in cluster.endpoints()}
        else:
            raise SystemExit(f"unknown command {command}")
    print(json.dumps(answer))


if __name__ == "__main__":
    main(sys.argv[1:])
