"""dcsctl itself killed at arbitrary points: running the same command again converges."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest

from tests.support.lab import REPO, LabCluster

SEED = 20261124  # fixed: a failure is reproducible


@pytest.mark.parametrize("attempt", range(4))
def test_up_killed_at_a_random_moment_is_finished_by_up(lab: LabCluster, attempt: int) -> None:
    delay = random.Random(SEED + attempt).uniform(0.0, 2.5)
    process = subprocess.Popen(
        [sys.executable, "-m", "dcsctl", "up", "-f", str(lab.spec_file)],
        env=lab.environ, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    started = time.monotonic()
    result = lab.ok("up", "--json").json()
    assert result["cluster_id"], f"killed after {delay:.2f} s"
    view = lab.ok("status", "--json").json()
    assert view["healthy"] is True and view["cluster_id"] == result["cluster_id"]
    assert time.monotonic() - started < 60
    # And once more: nothing left to do.
    assert "no changes" in lab.ok("up").err
