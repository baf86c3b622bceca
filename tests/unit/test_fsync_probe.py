"""The fsync probe for hosts without python3: dd's start-up cost is taken out."""

from __future__ import annotations

import pytest

from dcsctl.targets.ssh.checks import fsync_from_dd


def _line(mode: str, durations_ms: list[float]) -> str:
    stamps, t = [], 1000.0
    for took in durations_ms:
        stamps += [f"{t:.6f}", f"{t + took / 1000:.6f}"]
        t += 1
    return f"{mode} " + " ".join(stamps)


@pytest.mark.parametrize(("plain", "dsync", "p50", "p99"), [
    ([1.0] * 100, [1.5] * 100, 0.5, 0.5),  # fast disk: 0.5 ms per fsync
    ([1.0] * 100, [1.0] * 99 + [31.0], 0.0, 30.0),  # one slow fsync in a hundred
    ([1.0] * 100, [21.0] * 100, 20.0, 20.0),  # slow disk: 20 ms, well over etcd's 10
    ([2.0] * 100, [1.0] * 100, 0.0, 0.0),  # never negative
])
def test_fsync_from_dd_subtracts_dds_own_cost(plain: list[float], dsync: list[float],
                                              p50: float, p99: float) -> None:
    got = fsync_from_dd(_line("plain", plain) + "\n" + _line("dsync", dsync) + "\n")
    assert got == pytest.approx((p50, p99), abs=0.01)


def test_fsync_from_dd_reads_a_comma_decimal_separator() -> None:
    output = "plain 1,000000 1,001000\ndsync 2,000000 2,003000\n"
    assert fsync_from_dd(output) == pytest.approx((2.0, 2.0), abs=0.01)
