"""preflight's round-trip check: etcd's election timeout wants 10 round trips or more."""

from __future__ import annotations

import pytest

from dcsctl.targets.ssh.checks import Verdict, rtt_check, rtts_from_probe


def test_rtts_from_probe_takes_the_median_per_member() -> None:
    output = ("192.168.56.11:2380 1.000 1.001 2.000 2.0005 3.000 3.050\n"
              "192.168.56.12:2380 1.000 1.002 2,000 2,002 3.000 3.002\n")
    assert rtts_from_probe(output) == pytest.approx(
        {"192.168.56.11:2380": 1.0, "192.168.56.12:2380": 2.0}, abs=0.01)


@pytest.mark.parametrize(("election_ms", "rtts", "verdict", "says"), [
    (1000, {"a:2380": 0.3, "b:2380": 0.9}, Verdict.OK, "up to 0.90 ms"),
    (1000, {"a:2380": 100.0}, Verdict.OK, ">= 10 x"),
    (1000, {"a:2380": 5.0, "b:2380": 150.0}, Verdict.WARN, "raise it to at least 1500"),
    (1000, {}, Verdict.WARN, "not measured"),
])
def test_rtt_check_warns_under_ten_round_trips(election_ms: int, rtts: dict[str, float],
                                               verdict: Verdict, says: str) -> None:
    check = rtt_check("dcs-00", election_ms, rtts)
    assert check.verdict is verdict
    assert says in check.detail
