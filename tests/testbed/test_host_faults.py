"""Host faults on the guide's cluster: a reboot, a power cut of a member, a power cut of
the leader's host under a writer. systemd brings etcd back; dcsctl is not needed. The
scenarios are tests/testbed/scenarios.py (also run by scripts/reliability_report.py)."""

from __future__ import annotations

from tests.faults.scenarios import MIN_ACKED_DURING
from tests.testbed import scenarios
from tests.testbed.bed import Testbed
from tests.testbed.deployment import Deployment


def test_a_rebooted_member_host_runs_etcd_again_by_systemd_alone(
        cluster: Deployment, testbed: Testbed) -> None:
    reboot = scenarios.reboot_member(cluster, testbed)
    assert reboot.new_init  # a new systemd: the host did boot again
    # no dcsctl command in between: systemd started etcd at boot
    assert reboot.etcd_active
    assert reboot.etcd_restarts == "0"
    assert reboot.new_etcd_pid
    assert reboot.member_healthy
    assert reboot.hashes_equal


def test_a_power_cut_member_keeps_its_data_and_rejoins(cluster: Deployment,
                                                       testbed: Testbed) -> None:
    cut = scenarios.power_cut_member(cluster, testbed)
    assert cut.reported  # two of three: writes went on, status named the host
    assert cut.etcd_started  # by systemd at boot
    assert cut.keys == 21
    assert cut.hashes_equal
    assert cut.history is not None and cut.history.linearizable, cut.history
    assert cut.history.acked_during >= MIN_ACKED_DURING


def test_power_cut_of_the_leaders_host_under_a_writer_loses_no_acknowledged_write(
        cluster: Deployment, testbed: Testbed) -> None:
    cut = scenarios.leader_power_cut(cluster, testbed)
    assert cut.writer_error == ""
    # Counted from the new leader seen, the old one's host still dead.
    assert cut.acked_after >= MIN_ACKED_DURING
    assert cut.history is not None
    assert cut.linearizable, cut.history.checker
    assert cut.hashes_equal
    assert cut.new_leader_s is not None, "no other member named a new leader within 60 s"
    print(f"leader {cut.leader} power-cut after 50 acks: {cut.acked} acked, {cut.failed} "
          f"failed or unknown, linearizable; new leader after {cut.new_leader_s:.2f} s")
