"""Faults under load on real clusters: nothing acknowledged is lost, nothing hangs."""

from __future__ import annotations

import os

import pytest

from tests.conftest import LabCluster
from tests.faults.scenarios import hung_member, leader_kills, quorum_loss

ROUNDS = int(os.environ.get("DCSCTL_KILL_ROUNDS", "5"))


@pytest.fixture
def running(lab: LabCluster) -> LabCluster:
    lab.ok("up")
    return lab


def test_leader_kills_under_writes_lose_no_acknowledged_write(running: LabCluster) -> None:
    report = leader_kills(running, ROUNDS)
    assert report.audit is not None
    assert report.audit.lost == 0
    assert report.audit.acked > 0
    assert report.hashes_equal
    assert len(report.rounds) == ROUNDS
    assert all(r.new_leader_s < 10 for r in report.rounds)


@pytest.mark.slow
def test_leader_kill_soak(running: LabCluster) -> None:
    report = leader_kills(running, 25)
    assert report.audit is not None and report.audit.lost == 0 and report.hashes_equal


def test_quorum_loss_fails_fast_and_recovers_without_loss(running: LabCluster) -> None:
    report = quorum_loss(running)
    assert report.failing_write_s < 5  # the client's 2 s deadline, never a hang
    assert report.status_answered_s < 10  # admin status by client cert still answers
    assert report.healthy_while_down == 0
    assert report.audit.lost == 0


def test_hung_member_is_reported_and_recovers(running: LabCluster) -> None:
    report = hung_member(running)
    assert report.reported_unhealthy_s < 10
    assert report.recovered_s < 30
