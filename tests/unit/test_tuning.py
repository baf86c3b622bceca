"""etcd's timing rule for a round trip: what `init --rtt-ms` writes and what preflight's
rtt check holds a spec to are one rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcsctl import spec, tuning
from dcsctl.errors import DcsctlError
from dcsctl.targets.ssh.checks import Verdict, rtt_check
from tests.support.lab import run_cli


@pytest.mark.parametrize(("rtt_ms", "heartbeat", "election"), [
    (0.3, 100, 1000),  # a LAN: etcd's defaults
    (50, 100, 1000),  # still inside the defaults: 1000 >= 10 x 50
    (100, 100, 1000),
    (101, 110, 1100),  # rounded up to whole steps
    (180, 180, 1800),
    (5000, 5000, 50000),  # etcd's ceiling
])
def test_suggest_gives_a_heartbeat_near_the_rtt_and_ten_of_them_to_elect(
        rtt_ms: float, heartbeat: int, election: int) -> None:
    timings = tuning.suggest(rtt_ms)
    assert (timings.heartbeat_interval_ms, timings.election_timeout_ms) == (heartbeat, election)
    assert tuning.election_is_enough(timings.election_timeout_ms, rtt_ms)
    assert timings.election_timeout_ms >= 5 * timings.heartbeat_interval_ms  # the spec's rule


@pytest.mark.parametrize(("rtt_ms", "says"), [
    (0, "not a network's"), (-5, "not a network's"), (float("nan"), "not a network's"),
    (5001, "etcd allows at most 50000"),
])
def test_suggest_refuses_a_round_trip_no_timing_covers(rtt_ms: float, says: str) -> None:
    with pytest.raises(DcsctlError) as caught:
        tuning.suggest(rtt_ms)
    assert says in caught.value.message and caught.value.fix


@pytest.mark.parametrize("rtt_ms", [0.5, 50, 150, 420])
def test_the_suggestion_passes_preflights_rtt_check_and_one_step_less_does_not(
        rtt_ms: float) -> None:
    timings = tuning.suggest(rtt_ms)
    measured = {"dcs-01:2380": rtt_ms}
    assert rtt_check("dcs-00", timings.election_timeout_ms, measured).verdict is Verdict.OK
    if timings.election_timeout_ms > tuning.DEFAULT_ELECTION_MS:
        short = rtt_check("dcs-00", timings.election_timeout_ms - 100, measured)
        assert short.verdict is Verdict.WARN
        assert f"at least {timings.election_timeout_ms}" in short.detail
        assert f"--rtt-ms {rtt_ms:.0f}" in short.detail


def test_init_with_rtt_writes_the_timings_and_says_why(tmp_path: Path) -> None:
    out = tmp_path / "spec.yaml"
    result = run_cli(["init", "--target", "ssh", "--rtt-ms", "180", "-o", str(out)],
                     {"DCSCTL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"})
    assert result.code == 0, result.err
    parsed = spec.parse(out.read_text())
    assert (parsed.etcd.heartbeat_interval_ms, parsed.etcd.election_timeout_ms) == (180, 1800)
    assert parsed.target is spec.Target.SSH and len(parsed.members) == 3
    comments = out.read_text().split("\netcd:\n")[0].rsplit("\n\n", 1)[1]
    assert "180 ms round trip" in comments and "tuning guide" in comments


def test_init_without_rtt_keeps_etcds_defaults_and_no_timing_note(tmp_path: Path) -> None:
    result = run_cli(["init"], {"DCSCTL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"})
    assert result.code == 0
    assert "round trip between members (dcsctl init" not in result.out
    parsed = spec.parse(result.out)
    assert (parsed.etcd.heartbeat_interval_ms, parsed.etcd.election_timeout_ms) == (100, 1000)


def test_init_with_a_bad_rtt_says_error_and_fix_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "spec.yaml"
    result = run_cli(["init", "--rtt-ms", "0", "-o", str(out)],
                     {"DCSCTL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"})
    assert result.code != 0
    assert result.err.startswith("error:") and "fix:" in result.err
    assert not out.exists()
