"""Verdicts of the perf check against synthetic latency series, as etcdctl would judge."""

from __future__ import annotations

import math

import pytest

from dcsctl.perf import (
    DATASCALE_LOADS,
    PERF_LOADS,
    SpaceEstimate,
    bytes_per_key,
    estimate_space,
    percentile,
    perf_verdict,
    perf_writes,
    stored_bytes,
    summarize,
    throughput_timeline,
)

S = PERF_LOADS["s"]  # 150 writes/s target


@pytest.mark.parametrize(
    ("latencies", "seconds", "errors", "passed", "failing"),
    [
        ([0.005] * 9000, 60.0, 0, True, None),  # 150/s, fast and steady
        ([0.005] * 8100, 60.0, 0, False, "Throughput too low"),  # 135/s = exactly 90 %: fails
        ([0.005] * 8200, 60.0, 0, True, None),  # 136.7/s > 90 %
        ([0.005] * 8999 + [0.6], 60.0, 0, False, "Slowest request took too long"),
        ([0.005] * 8999 + [0.49], 60.0, 0, True, None),
        ([0.001] * 4500 + [0.25] * 4500, 60.0, 0, False, "Stddev too high"),
        ([0.005] * 9000, 60.0, 3, False, "too many errors"),
    ],
)
def test_perf_verdicts(latencies: list[float], seconds: float, errors: int, passed: bool,
                       failing: str | None) -> None:
    verdict = perf_verdict(summarize(latencies, errors, seconds), S)
    assert verdict.passed is passed
    assert verdict.lines[-1] == ("PASS" if passed else "FAIL")
    if failing:
        assert any(failing in line for line in verdict.lines)


def test_throughput_line_rounds_up_like_etcdctl() -> None:
    verdict = perf_verdict(summarize([0.005] * 9000, 0, 60.0), S)
    assert verdict.lines[0] == "PASS: Throughput is 151 writes/s"


def test_percentiles_are_nearest_rank() -> None:
    ordered = [i / 100 for i in range(1, 101)]
    assert percentile(ordered, 0.5) == 0.5
    assert percentile(ordered, 0.99) == 0.99
    stats = summarize(list(reversed(ordered)), 0, 10.0)
    assert (stats.p50, stats.p90, stats.p99, stats.slowest) == (0.5, 0.9, 0.99, 1.0)


def test_timeline_counts_whole_seconds() -> None:
    assert throughput_timeline([0.1, 0.5, 1.2, 2.9, 3.01], 3.02) == [2, 1, 2]


# -- the space a load adds, against the quota --
MIB = 2**20
QUOTA_32_MIB = 32 * MIB
QUOTA_2_GIB = 2 * 2**30


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (256 + 1024 + 32, 4096 / 2),  # perf put: 2 a page (measured 2065 B)
        (512 + 512 + 32, 4096 / 3),  # datascale put: 3 a page (measured 1368 B)
        (256 + 32, 4096 / 11),  # perf tombstone (measured 351 B)
        (512 + 32, 4096 / 6),  # datascale tombstone (measured 703 B)
        (1, 4096 / 107),  # tiny records: as many as fit in 90 % of a page
        (2 * 1024 * 1024, 513 * 4096),  # larger than a page: whole overflow pages
    ],
)
def test_stored_bytes_follow_bbolt_pages(record: int, expected: float) -> None:
    assert stored_bytes(record) == pytest.approx(expected)


def test_a_key_costs_its_put_and_its_tombstone() -> None:
    assert bytes_per_key(256, 1024) == 2421
    assert bytes_per_key(512, 512) == 2048


def _perf(load: str, seconds: float, *, db: int = 20_480, in_use: int = 20_480,
          quota: int = QUOTA_32_MIB) -> SpaceEstimate:
    spec = PERF_LOADS[load]
    return estimate_space(perf_writes(spec, seconds), spec.key_size, spec.value_size,
                          db_size=db, db_size_in_use=in_use, quota=quota)


def _datascale(load: str, *, quota: int) -> SpaceEstimate:
    spec = DATASCALE_LOADS[load]
    return estimate_space(spec.keys, spec.key_size, spec.value_size, db_size=20_480,
                          db_size_in_use=20_480, quota=quota)


@pytest.mark.parametrize(
    ("estimate", "fits", "added_mb"),
    [
        # issue 12: 32 MiB quota, perf m for 40 s filled it; 40 000 writes ~ 106 MB
        (_perf("m", 40), False, 106.5),
        (_perf("s", 20), True, 8.0),  # 3000 writes ~ 8 MB of the 30 MB a check may use
        (_perf("s", 60, quota=QUOTA_2_GIB), True, 24.0),
        (_perf("l", 60, quota=QUOTA_2_GIB), True, 1278.3),  # 1.28 of 1.93 GB
        (_perf("xl", 60, quota=QUOTA_2_GIB), False, 2396.8),
        # a big file with little in use: freed pages are reused before the file grows
        (_perf("s", 60, db=1_900_000_000, in_use=100_000_000, quota=QUOTA_2_GIB), True, 24.0),
        # ...but a file already past the ceiling stays refused
        (_perf("s", 1, db=1_950_000_000, in_use=100_000, quota=QUOTA_2_GIB), False, 0.4),
        (_perf("s", 60, db=30 * MIB, in_use=30 * MIB), False, 24.0),
        (_datascale("s", quota=QUOTA_32_MIB), True, 22.5),
        (_datascale("l", quota=QUOTA_2_GIB), False, 2252.8),  # the old guess let it run
        (_datascale("xl", quota=QUOTA_2_GIB), False, 6758.4),
    ],
)
def test_space_estimate_against_the_quota(estimate: SpaceEstimate, fits: bool,
                                          added_mb: float) -> None:
    assert estimate.fits is fits
    assert estimate.added / 1e6 == pytest.approx(added_mb, abs=0.1)
    assert estimate.ceiling == estimate.quota - math.ceil(estimate.quota * 0.1)


def test_a_refused_estimate_names_what_would_fit() -> None:
    estimate = _perf("m", 40)
    assert not estimate.fits
    fitting = estimate.max_writes
    assert fitting // PERF_LOADS["m"].limit == 11  # --duration 11 of load m fits 32 MiB
    assert _perf("m", fitting / PERF_LOADS["m"].limit).fits
    assert not _perf("m", (fitting + 1) / PERF_LOADS["m"].limit).fits
    needed = estimate.quota_needed
    assert needed % MIB == 0
    assert _perf("m", 40, quota=needed).fits
    assert not _perf("m", 40, quota=needed - 2 * MIB).fits
