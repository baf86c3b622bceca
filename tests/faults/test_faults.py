"""Faults under load on real clusters: every history linearizable, writes go on while a
fault lasts, nothing hangs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults.scenarios import MIN_ACKED_DURING, hung_member, leader_kills, quorum_loss
from tests.support.lab import LabCluster

ROUNDS = int(os.environ.get("DCSCTL_KILL_ROUNDS", "20"))


@pytest.fixture
def running(lab: LabCluster) -> LabCluster:
    lab.ok("up")
    return lab


def test_leader_kills_under_the_workload_stay_linearizable(running: LabCluster,
                                                           tmp_path: Path) -> None:
    report = leader_kills(running, ROUNDS, tmp_path)
    assert report.history is not None
    assert report.history.linearizable, report.history.checker
    assert len(report.rounds) == ROUNDS
    # Every round: writes acknowledged after the new leader was seen, the member still down.
    assert all(r.acked_during >= MIN_ACKED_DURING for r in report.rounds)
    assert all(r.new_leader_s < 10 for r in report.rounds)
    assert report.hashes_equal


def test_quorum_loss_fails_fast_and_recovers_linearizably(running: LabCluster,
                                                          tmp_path: Path) -> None:
    report = quorum_loss(running, tmp_path)
    assert report.failing_write_s < 5  # the client's 2 s deadline, never a hang
    assert report.status_answered_s < 10  # admin status by client cert still answers
    assert report.healthy_while_down == 0
    assert report.acked_while_down == 0  # no quorum, no acknowledgement
    assert report.history.acked_during >= MIN_ACKED_DURING  # after the recovery
    assert report.history.unknown > 0  # the writes in flight when quorum went
    assert report.history.linearizable, report.history.checker


def test_hung_member_is_reported_and_recovers(running: LabCluster) -> None:
    report = hung_member(running)
    assert report.reported_unhealthy_s < 10
    assert report.recovered_s < 30
