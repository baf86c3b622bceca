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
# etcdctl's own loads run 60 s; longer runs only add risk to the DCS they measure.
MAX_DURATION_S = 60


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


def throughput_timeline(starts: Sequence[float], seconds: float) -> list[int]:
    """Completed requests per whole second of the run (starts relative to the run)."""
    buckets = [0] * max(1, int(seconds))  # whole seconds; a partial tail folds into the last
    for start in starts:
        buckets[min(len(buckets) - 1, max(0, int(start)))] += 1
    return buckets


# -- what a load adds to the database file --
# etcd keeps every revision in bbolt's "key" bucket: key = the revision (17 bytes), value =
# the KeyValue protobuf (key, value, revisions, version). Its puts are sequential, so
# bbolt splits pages at 90 % fill: a page holds as many whole records as fit in 90 % of
# it, and a record larger than a page takes whole overflow pages. Each key a check writes
# costs one put and, at clean-up, one delete tombstone (the key without its value);
# auto-compaction frees none of it before the check ends. Measured on etcd 3.5.30, lab,
# 3 members: 256 B keys + 1 KiB values grew the file 2065 B per put and 351 B per
# tombstone; 512 B + 512 B: 1368 B and 703 B — this model says 2048/372 and 1365/683.
BOLT_PAGE_BYTES = 4096
BOLT_PAGE_HEADER_BYTES = 16
BOLT_ELEMENT_HEADER_BYTES = 16
BOLT_SEQUENTIAL_FILL = 0.9
REVISION_KEY_BYTES = 17
KEYVALUE_ENCODING_BYTES = 32  # protobuf tags, lengths and the revision varints
# The model's error (branch pages, the freelist) and Patroni's own writes meanwhile.
ESTIMATE_MARGIN = 1.1
QUOTA_RESERVE_SHARE = 0.1  # of the quota, never planned for a check


def stored_bytes(record_bytes: int) -> float:
    """Bytes of the database file one bbolt record of the key bucket takes, on average."""
    element = REVISION_KEY_BYTES + record_bytes + BOLT_ELEMENT_HEADER_BYTES
    usable = BOLT_PAGE_BYTES * BOLT_SEQUENTIAL_FILL - BOLT_PAGE_HEADER_BYTES
    per_page = int(usable // element)
    if per_page >= 1:
        return BOLT_PAGE_BYTES / per_page
    pages = math.ceil((element + BOLT_PAGE_HEADER_BYTES) / BOLT_PAGE_BYTES)
    return float(pages * BOLT_PAGE_BYTES)


def bytes_per_key(key_size: int, value_size: int) -> int:
    """File growth for one key a check writes and later deletes (put + tombstone)."""
    put = stored_bytes(key_size + value_size + KEYVALUE_ENCODING_BYTES)
    tombstone = stored_bytes(key_size + KEYVALUE_ENCODING_BYTES)
    return math.ceil(put + tombstone)


@dataclass(frozen=True)
class SpaceEstimate:
    """Whether a load fits the space quota of the largest member, with a margin."""

    writes: int
    bytes_per_write: int
    db_size: int  # the member's file (etcd compares the file size with the quota)
    db_size_in_use: int  # freed pages inside the file are reused before it grows
    quota: int

    @property
    def added(self) -> int:
        return math.ceil(self.writes * self.bytes_per_write * ESTIMATE_MARGIN)

    @property
    def projected(self) -> int:
        """The file size at the load's peak (before the clean-up compacts it away)."""
        return max(self.db_size, self.db_size_in_use + self.added)

    @property
    def ceiling(self) -> int:
        return self.quota - math.ceil(self.quota * QUOTA_RESERVE_SHARE)

    @property
    def fits(self) -> bool:
        return self.projected <= self.ceiling

    @property
    def max_writes(self) -> int:
        """The most writes of this size that would still fit."""
        if self.db_size > self.ceiling:
            return 0
        room = self.ceiling - self.db_size_in_use
        return max(0, math.floor(room / (self.bytes_per_write * ESTIMATE_MARGIN)))

    @property
    def quota_needed(self) -> int:
        """The smallest quota (in whole MiB) under which this load would fit."""
        peak = max(self.db_size, self.db_size_in_use + self.added)
        return math.ceil(peak / (1 - QUOTA_RESERVE_SHARE) / 2**20 + 1) * 2**20


def perf_writes(load: PerfLoad, seconds: float) -> int:
    """The most writes a perf run can make: its rate limit for its whole duration."""
    return math.ceil(load.limit * seconds)


def estimate_space(
    writes: int, key_size: int, value_size: int, *, db_size: int, db_size_in_use: int,
    quota: int,
) -> SpaceEstimate:
    return SpaceEstimate(writes, bytes_per_key(key_size, value_size), db_size,
                         db_size_in_use, quota)
