"""The guide's checks as data: etcdctl's workloads, statistics and verdicts, no I/O.

Workloads and thresholds are etcdctl's own (`etcdctl check perf|datascale`), so a
verdict here means what it means there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PerfLoad:
    name: str
    limit: int  # target writes/s (the rate limiter's ceiling)
    clients: int
    duration_s: int
    key_size: int = 256
    value_size: int = 1024


@dataclass(frozen=True)
class DatascaleLoad:
    name: str
    keys: int
    clients: int
    key_size: int = 512
    value_size: int = 512


PERF_LOADS: dict[str, PerfLoad] = {
    "s": PerfLoad("s", limit=150, clients=50, duration_s=60),
    "m": PerfLoad("m", limit=1000, clients=200, duration_s=60),
    "l": PerfLoad("l", limit=8000, clients=500, duration_s=60),
    "xl": PerfLoad("xl", limit=15000, clients=1000, duration_s=60),
}

DATASCALE_LOADS: dict[str, DatascaleLoad] = {
    "s": DatascaleLoad("s", keys=10_000, clients=50),
    "m": DatascaleLoad("m", keys=100_000, clients=200),
    "l": DatascaleLoad("l", keys=1_000_000, clients=500),
    "xl": DatascaleLoad("xl", keys=3_000_000, clients=1000),
}

# etcdctl's PASS thresholds.
MIN_THROUGHPUT_SHARE = 0.9
MAX_SLOWEST_S = 0.5
MAX_STDDEV_S = 0.1
# A revision costs the key, the value and bolt's bookkeeping: a deliberately high guess.
BYTES_PER_REVISION_OVERHEAD = 512


@dataclass(frozen=True)
class LatencyStats:
    count: int
    errors: int
    seconds: float
    rps: float
    fastest: float
    slowest: float
    mean: float
    stddev: float
    p50: float
    p90: float
    p99: float


def percentile(ordered: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def summarize(latencies: Sequence[float], errors: int, seconds: float) -> LatencyStats:
    ordered = sorted(latencies)
    count = len(ordered)
    mean = sum(ordered) / count if count else 0.0
    variance = sum((x - mean) ** 2 for x in ordered) / count if count else 0.0
    return LatencyStats(
        count=count, errors=errors, seconds=seconds,
        rps=count / seconds if seconds > 0 else 0.0,
        fastest=ordered[0] if ordered else 0.0, slowest=ordered[-1] if ordered else 0.0,
        mean=mean, stddev=math.sqrt(variance),
        p50=percentile(ordered, 0.50), p90=percentile(ordered, 0.90),
        p99=percentile(ordered, 0.99),
    )


@dataclass(frozen=True)
class Verdict:
    passed: bool
    lines: tuple[str, ...]  # as etcdctl prints them


def perf_verdict(stats: LatencyStats, load: PerfLoad) -> Verdict:
    lines: list[str] = []
    passed = True
    if stats.errors:
        lines.append(f"FAIL: too many errors: {stats.errors}")
        passed = False
    shown_rps = int(stats.rps) + 1  # etcdctl rounds up
    if stats.rps / load.limit <= MIN_THROUGHPUT_SHARE:
        lines.append(f"FAIL: Throughput too low: {shown_rps} writes/s")
        passed = False
    else:
        lines.append(f"PASS: Throughput is {shown_rps} writes/s")
    if stats.slowest > MAX_SLOWEST_S:
        lines.append(f"FAIL: Slowest request took too long: {stats.slowest:f}s")
        passed = False
    else:
        lines.append(f"PASS: Slowest request took {stats.slowest:f}s")
    if stats.stddev > MAX_STDDEV_S:
        lines.append(f"FAIL: Stddev too high: {stats.stddev:f}s")
        passed = False
    else:
        lines.append(f"PASS: Stddev is {stats.stddev:f}s")
    lines.append("PASS" if passed else "FAIL")
    return Verdict(passed, tuple(lines))


def datascale_bytes(load: DatascaleLoad) -> int:
    """A generous estimate of the database growth the datascale load causes."""
    return load.keys * (load.key_size + load.value_size + BYTES_PER_REVISION_OVERHEAD)


def throughput_timeline(starts: Sequence[float], seconds: float) -> list[int]:
    """Completed requests per whole second of the run (starts relative to the run)."""
    buckets = [0] * max(1, int(seconds))  # whole seconds; a partial tail folds into the last
    for start in starts:
        buckets[min(len(buckets) - 1, max(0, int(start)))] += 1
    return buckets
