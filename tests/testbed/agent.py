"""Runs on the testbed's control side (`ip netns exec`), where the hosts are reachable:
  agent SPEC write PREFIX COUNT MAX_SECONDS   sequential puts; `ack KEY` / `fail KEY ...` lines
  agent SPEC keys PREFIX                      JSON list of the keys under PREFIX (linearizable)
  agent SPEC hashes                           JSON {endpoint: hashkv} at one revision
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from dcsctl.errors import DcsctlError
from dcsctl.ops.context import Cluster
from tests.support import SpecFileIn
from tests.support import cluster_of as support_cluster_of


def cluster_of(spec_file: str) -> Cluster:
    return support_cluster_of(SpecFileIn(dict(os.environ), Path(spec_file)))


def write(cluster: Cluster, prefix: str, count: int, max_seconds: float) -> None:
    """Bounded in count and time. A failed (e.g. timed-out) put is reported as `fail`: it
    may still have been committed, so it is never counted as acknowledged or lost."""
    deadline = time.monotonic() + max_seconds
    client = cluster.admin_client(timeout=2.0)
    try:
        for index in range(count):
            if time.monotonic() > deadline:
                break
            key = f"{prefix}{index:06d}"
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


def main(argv: list[str]) -> None:
    spec_file, command, *rest = argv
    cluster = cluster_of(spec_file)
    if command == "write":
        write(cluster, rest[0], int(rest[1]), float(rest[2]))
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
