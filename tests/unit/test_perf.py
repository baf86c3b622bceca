"""Verdicts of the perf check against synthetic latency series, as etcdctl would judge."""

from __future__ import annotations

import pytest

from dcsctl.perf import PERF_LOADS, percentile, perf_verdict, summarize, throughput_timeline

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
