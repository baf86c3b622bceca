"""Which of dcsctl's alerts fire on a healthy DCS? The rules `dcsctl monitoring` writes,
evaluated by a real Prometheus against a real 3-member lab cluster, first idle, then under
a steady write load, and the count of minutes each alert fired in each phase, with the
worst p99 of the latencies the thresholds judge. The answer goes to
docs/monitoring-soak.md: the evidence behind the thresholds in src/dcsctl/prometheus.py.

    .venv/bin/python scripts/alert_soak.py [--minutes 30] [--writers 8]

Bounded: each phase lasts --minutes; the load is --writers threads of 512-byte puts as
fast as etcd takes them, on loopback only. Everything it starts is stopped by PID.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.monitoring.servers import get_json  # noqa: E402
from tests.monitoring.servers import prometheus as prometheus_server  # noqa: E402
from tests.support import cluster_of  # noqa: E402
from tests.support.lab import free_loopback_address, lab_clusters  # noqa: E402

from dcsctl import prometheus  # noqa: E402
from dcsctl.errors import DcsctlError  # noqa: E402

LATENCIES = {
    "WAL fsync": "etcd_disk_wal_fsync_duration_seconds",
    "backend commit": "etcd_disk_backend_commit_duration_seconds",
    "peer round trip": "etcd_network_peer_round_trip_time_seconds",
}
GRPC_P99 = ('max(histogram_quantile(0.99, sum without (grpc_type) (rate('
            'grpc_server_handling_seconds_bucket{grpc_type="unary",grpc_method!="Defragment"}'
            '[5m]))))')


def query(url: str, expression: str) -> list[dict[str, object]]:
    data = get_json(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expression}))
    result = data["data"]["result"]  # type: ignore[index]
    return list(result)


def phase_report(url: str, seconds: int, eval_s: float) -> dict[str, object]:
    window = f"{seconds}s"
    fired = {}
    for row in query(url, f'count_over_time(ALERTS{{alertstate="firing"}}[{window}])'):
        labels = row["metric"]  # type: ignore[index]
        key = f"{labels['alertname']} ({labels['severity']})"  # type: ignore[index]
        minutes = float(row["value"][1]) * eval_s / 60  # type: ignore[index]
        fired[key] = round(max(fired.get(key, 0.0), minutes), 1)
    worst = {}
    for name, histogram in LATENCIES.items():
        found = query(url, f"max(max_over_time((histogram_quantile(0.99, sum by (member, le) "
                           f"(rate({histogram}_bucket[5m]))))[{window}:30s]))")
        worst[name] = float(found[0]["value"][1]) if found else None  # type: ignore[index]
    found = query(url, f"max_over_time(({GRPC_P99})[{window}:30s])")
    worst["unary gRPC"] = float(found[0]["value"][1]) if found else None  # type: ignore[index]
    return {"fired_minutes": fired, "worst_p99_s": worst}


def load(cluster_spec: Path, environ: dict[str, str], writers: int, seconds: float,
         counts: list[int], failures: list[int]) -> None:
    from tests.support import SpecFileIn
    cluster = cluster_of(SpecFileIn(environ, cluster_spec))
    stop_at = time.monotonic() + seconds
    value = b"x" * 512

    def writer(index: int) -> None:
        with cluster.admin_client() as client:
            n = 0
            while time.monotonic() < stop_at and n < 10_000_000:
                try:
                    client.put(f"/soak/{index}/{n % 1000}", value)
                    counts[index] += 1
                except DcsctlError:
                    failures[index] += 1  # a failed put is counted, and the load goes on
                n += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "monitoring-soak.md")
    args = parser.parse_args()
    seconds = int(args.minutes * 60)
    eval_s = 5.0
    with tempfile.TemporaryDirectory() as scratch, lab_clusters(Path(scratch)) as make:
        work = Path(scratch)
        lab = make()
        lab.ok("up")
        mon = work / "monitoring"
        lab.ok("monitoring", "--out", str(mon), "--scrape-interval", "5s",
               "--evaluation-interval", f"{eval_s:g}s")
        with prometheus_server(free_loopback_address(), mon, work, work) as url:
            started = dt.datetime.now(dt.UTC)
            print(f"idle for {args.minutes:g} min", flush=True)
            time.sleep(seconds)  # the idle phase is the measurement itself
            idle = phase_report(url, seconds, eval_s)
            print(json.dumps(idle), flush=True)
            counts, failures = [0] * args.writers, [0] * args.writers
            print(f"loaded for {args.minutes:g} min ({args.writers} writers)", flush=True)
            load(lab.spec_file, lab.environ, args.writers, seconds, counts, failures)
            print(f"{sum(counts)} puts, {sum(failures)} failed", flush=True)
            loaded = phase_report(url, seconds, eval_s)
            print(json.dumps(loaded), flush=True)
    write_report(args, started, idle, loaded, sum(counts) / seconds)


def write_report(args: argparse.Namespace, started: dt.datetime, idle: dict[str, object],
                 loaded: dict[str, object], rate: float) -> None:
    names = sorted({r.name for r in prometheus.RULES})
    lines = [
        "# Which alerts fire on a healthy DCS",
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC with `.venv/bin/python scripts/alert_soak.py "
        f"--minutes {args.minutes:g} --writers {args.writers}`: a 3-member lab cluster "
        "(loopback, this project's 2-core machine, other work running beside it), the "
        "configuration and rules `dcsctl monitoring` writes, a real Prometheus evaluating "
        f"them every 5 s. Idle for {args.minutes:g} minutes, then {args.writers} writers "
        f"putting 512-byte values as fast as etcd takes them ({rate:.0f} puts/s on "
        f"average) for {args.minutes:g} minutes. Minutes firing per alert (blank: never):",
        "",
        "| alert | idle | loaded |",
        "|---|---|---|",
    ]
    fired_idle = idle["fired_minutes"]
    fired_loaded = loaded["fired_minutes"]
    assert isinstance(fired_idle, dict) and isinstance(fired_loaded, dict)
    for name in names:
        keys = sorted({k for k in (*fired_idle, *fired_loaded) if k.startswith(name + " ")})
        if not keys:
            lines.append(f"| {name} | | |")
        for key in keys:
            lines.append(f"| {key} | {fired_idle.get(key, '')} | {fired_loaded.get(key, '')} |")
    lines += ["", "The worst 99th percentile seen (5-minute windows), against the thresholds:",
              "", "| latency | idle | loaded | warning at |", "|---|---|---|---|"]
    thresholds = {"WAL fsync": prometheus.WAL_FSYNC_P99_S,
                  "backend commit": prometheus.BACKEND_COMMIT_P99_S,
                  "peer round trip": prometheus.PEER_RTT_P99_S,
                  "unary gRPC": prometheus.GRPC_P99_S}
    worst_idle, worst_loaded = idle["worst_p99_s"], loaded["worst_p99_s"]
    assert isinstance(worst_idle, dict) and isinstance(worst_loaded, dict)

    def ms(value: object) -> str:
        number = float(value) if value is not None else math.nan  # type: ignore[arg-type]
        return "" if math.isnan(number) else f"{number * 1000:.1f} ms"

    for name, threshold in thresholds.items():
        lines.append(f"| {name} | {ms(worst_idle.get(name))} | {ms(worst_loaded.get(name))} "
                     f"| {threshold * 1000:g} ms |")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
