"""How many Patroni clusters one DCS serves: N simulated 3-node Patroni clusters, per etcd line.

    .venv/bin/python benchmarks/bench_capacity.py [--etcd 3.5.36 3.6.17 3.7.4]
        [--steps 50,100,200,400,800] [--loops 2] [--loop-wait 10]

Per etcd version one fresh 3-member lab cluster (127.0.92.10-12, its own DCSCTL_HOME). For
each N in --steps (stopping at the first N that fails), N scopes of 3 nodes each behave as
Patroni's etcd3 DCS does, over gRPC with the admin certificate (the same requests Patroni
sends through the gateway, without its HTTP/JSON cost):

- every node holds a lease (ttl 30 s) and, once per loop_wait (10 s), at its own random
  phase: keeps the lease alive and puts its member key /service/<scope>/members/<node>
  with it;
- the leader (node 0) renews /service/<scope>/leader once per loop with a compare-and-swap
  (value == its name -> put with its lease), the request Patroni's leader loop sends;
- every node watches the scope's prefix, as Patroni's kv cache does.

After one warm-up loop, `--loops` loops are measured. N passes if the p99 latency of the
writes (leader CAS and member puts) is under 50 ms and no leader renewal was missed (the
CAS did not succeed, failed, or took longer than Patroni's retry_timeout, 10 s). Memory per
scope: the largest member's resident memory (its /metrics) with N scopes, less the same
with none, over N. The load generator is one Python process on the same 2 cores: its CPU
share is reported, and a step whose nodes started their loops late (the generator, not
etcd, falling behind) is reported as generator-bound rather than as etcd's limit.
Results: a markdown table on stdout and benchmarks/out/capacity.json. Every step is bounded
in count and time; the cluster is destroyed at the end, pass or fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from etcd3aio import Etcd3Client
from etcd3aio.kv import KVService
from harness import BIN, OUT, REPO, clean_environ, run

from dcsctl.etcd.client import prefix_range_end
from dcsctl.etcd.tls import metrics_text
from dcsctl.ops.cluster import Context
from dcsctl.spec import parse

IPS = ("127.0.92.10", "127.0.92.11", "127.0.92.12")
NAME = "capbench"
TTL_S = 30
RETRY_TIMEOUT_S = 10.0
P99_LIMIT_S = 0.050
CONNECTIONS = 8  # gRPC connections the simulated nodes share
_RSS = re.compile(r"^process_resident_memory_bytes\s+([0-9.e+]+)$", re.MULTILINE)


class Step:
    """What one N saw."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.missed: list[str] = []
        self.errors: list[str] = []  # keepalives and member-key puts that failed
        self.late_loops = 0
        self.events = 0


async def node(clients: list[Etcd3Client], scope: int, index: int, step: Step,
               loop_wait: float, loops: int, started: float) -> None:
    client = clients[(scope * 3 + index) % len(clients)]
    name = f"node{index}"
    base = f"/service/s{scope:04d}/"
    lease = (await client.lease.grant(TTL_S, timeout=10)).ID
    phase = random.uniform(0, loop_wait)  # Patroni nodes are not in step
    for loop in range(loops + 1):  # the first loop warms up, unmeasured
        due = started + phase + loop * loop_wait
        delay = due - time.monotonic()
        if delay < -1.0:
            step.late_loops += 1
        await asyncio.sleep(max(0.0, delay))
        measured = loop > 0
        began = time.monotonic()
        keepalive = client.lease.keep_alive(lease)
        try:
            await asyncio.wait_for(keepalive.read(), RETRY_TIMEOUT_S)
            began = time.monotonic()
            await client.kv.put(f"{base}members/{name}", b'{"role": "replica"}', lease=lease,
                                timeout=RETRY_TIMEOUT_S)
            if measured:
                step.latencies.append(time.monotonic() - began)
        except Exception as exc:  # a failed write is the figure
            if measured:
                step.errors.append(f"s{scope} {name} loop {loop}: {type(exc).__name__}")
        finally:
            keepalive.cancel()
        if index == 0:
            began = time.monotonic()
            try:
                leader = f"{base}leader"
                response = await client.kv.txn(
                    [KVService.txn_compare_value(leader, name)] if loop else
                    [KVService.txn_compare_version(leader, 0)],
                    [KVService.txn_op_put(leader, name, lease=lease)],
                    timeout=RETRY_TIMEOUT_S)
                took = time.monotonic() - began
                if measured:
                    step.latencies.append(took)
                    if not response.succeeded or took > RETRY_TIMEOUT_S:
                        step.missed.append(f"s{scope} loop {loop}: lost the CAS")
            except Exception as exc:  # a failed renewal is the figure
                if measured:
                    step.missed.append(f"s{scope} loop {loop}: {type(exc).__name__}")


async def watcher(client: Etcd3Client, scope: int, step: Step) -> None:
    """Patroni's kv cache: a watch on the scope's prefix (cancelled at the step's end)."""
    prefix = f"/service/s{scope:04d}/"
    async for response in client.watch.watch(prefix, prefix_range_end(prefix)):
        step.events += len(response.events)


async def simulate(endpoints: list[str], tls: dict[str, bytes], scopes: int, loops: int,
                   loop_wait: float) -> tuple[Step, float]:
    clients = [Etcd3Client(endpoints, tls_server_name=tls["name"].decode(), ca_cert=tls["ca"],
                           cert_chain=tls["cert"], cert_key=tls["key"])
               for _ in range(CONNECTIONS)]
    for client in clients:
        await client.connect()
    step = Step()
    started = time.monotonic() + 1.0
    until = started + (loops + 1) * loop_wait + RETRY_TIMEOUT_S
    cpu_before = time.process_time()
    try:
        watchers = [asyncio.create_task(watcher(clients[(s * 3 + i) % CONNECTIONS], s, step))
                    for s in range(scopes) for i in range(3)]
        await asyncio.wait_for(asyncio.gather(*(
            node(clients, s, i, step, loop_wait, loops, started)
            for s in range(scopes) for i in range(3))), until - time.monotonic() + 30)
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    finally:
        for client in clients:
            await client.close()
    cpu_share = (time.process_time() - cpu_before) / max(1e-9, time.monotonic() - started)
    return step, cpu_share


def resident(cluster_urls: list[str], tls: object) -> int:
    found = []
    for url in cluster_urls:
        match = _RSS.search(metrics_text(url, tls))  # type: ignore[arg-type]
        found.append(int(float(match.group(1))) if match else 0)
    return max(found)


def one_version(version: str, scratch: Path, steps: list[int], loops: int,
                loop_wait: float) -> list[dict[str, object]]:
    home = scratch / f"home-{version}"
    env = clean_environ()
    env["DCSCTL_HOME"] = str(home)
    env["DCSCTL_ETCD_BIN_DIR"] = str(REPO / ".tools" / f"etcd-{version}" / "bin")
    spec_file = scratch / f"{version}.yaml"
    spec_file.write_text(f"name: {NAME}\nmembers:\n" + "".join(
        f"  - {{name: {NAME}-{i}, address: {ip}}}\n" for i, ip in enumerate(IPS)))
    dcsctl = str(BIN / "dcsctl")
    rows: list[dict[str, object]] = []
    try:
        run([dcsctl, "up", "-f", str(spec_file)], env=env)
        cluster = Context(env).cluster(parse(spec_file.read_text()))
        admin = cluster.admin_tls()
        tls = {"ca": admin.ca_pem, "cert": admin.cert_pem, "key": admin.key_pem,
               "name": admin.server_name.encode()}
        urls = cluster.endpoints()
        endpoints = [u.removeprefix("https://") for u in urls]
        baseline = resident(urls, admin)
        for scopes in steps:
            with cluster.admin_client(timeout=30) as client:
                client.delete_prefix("/service/")
            step, cpu = asyncio.run(simulate(endpoints, tls, scopes, loops, loop_wait))
            rss = resident(urls, admin)
            ordered = sorted(step.latencies)
            p99 = ordered[int(0.99 * (len(ordered) - 1))] if ordered else float("nan")
            passed = p99 < P99_LIMIT_S and not step.missed and not step.errors
            rows.append({"etcd": version, "scopes": scopes, "writes": len(ordered),
                         "p50_ms": 1000 * statistics.median(ordered) if ordered else None,
                         "p99_ms": 1000 * p99, "missed": len(step.missed),
                         "missed_examples": step.missed[:3], "errors": len(step.errors),
                         "error_examples": step.errors[:3], "late_loops": step.late_loops,
                         "watch_events": step.events, "generator_cpu": cpu,
                         "rss_mib": rss / 2**20,
                         "rss_per_scope_kib": (rss - baseline) / scopes / 1024,
                         "passed": passed})
            print(json.dumps(rows[-1]), file=sys.stderr)
            if not passed:
                break
    finally:
        run([dcsctl, "destroy", "--yes", "-f", str(spec_file)], env=env)
        shutil.rmtree(home, ignore_errors=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--etcd", nargs="+", default=["3.5.36", "3.6.17", "3.7.4"])
    parser.add_argument("--steps", default="50,100,200,400,800")
    parser.add_argument("--loops", type=int, default=2)
    parser.add_argument("--loop-wait", type=float, default=10.0)
    options = parser.parse_args()
    steps = [int(n) for n in options.steps.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    load_start = os.getloadavg()[0]
    rows: list[dict[str, object]] = []
    try:
        for version in options.etcd:
            rows += one_version(version, scratch, steps, options.loops, options.loop_wait)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load_end = os.getloadavg()[0]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "capacity.json").write_text(json.dumps(
        {"load": [load_start, load_end], "rows": rows}, indent=2))
    print(f"load average {load_start:.2f} at start, {load_end:.2f} at end; "
          f"{options.loops} measured loops of {options.loop_wait:g} s per step\n")
    print("| etcd | Patroni clusters (×3 nodes) | writes | p50 | p99 | missed renewals | "
          "late loops | generator CPU | etcd RSS | per scope | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['etcd']} | {r['scopes']} | {r['writes']} | {r['p50_ms']:.1f} ms | "
              f"{r['p99_ms']:.1f} ms | {r['missed']} | {r['late_loops']} | "
              f"{float(r['generator_cpu']):.0%} | {r['rss_mib']:.0f} MiB | "  # type: ignore[arg-type]
              f"{r['rss_per_scope_kib']:.0f} KiB | {'pass' if r['passed'] else 'FAIL'} |")
    print()
    for version in options.etcd:
        passing = [int(r["scopes"]) for r in rows  # type: ignore[call-overload]
                   if r["etcd"] == version and r["passed"]]
        print(f"etcd {version}: largest N passing: {max(passing) if passing else 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
