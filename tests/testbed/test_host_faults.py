"""Host faults on the guide's cluster: a reboot, a power cut of a member, a power cut of
the leader's host under a writer. systemd brings etcd back; dcsctl is not needed."""

from __future__ import annotations

import time

from tests.testbed.bed import Testbed
from tests.testbed.conftest import (
    Deployment,
    acked_and_lost,
    hashes_equal,
    status_of,
    wait_healthy,
)


def _follower(cluster: Deployment) -> str:
    leader = wait_healthy(cluster)["leader"]
    return next(h for h in cluster.bed.hosts() if h != leader)


def _etcd_pid(testbed: Testbed, host: str) -> str:
    return testbed.ssh(host, "systemctl show -p MainPID --value etcd").stdout.strip()


def test_a_rebooted_member_host_runs_etcd_again_by_systemd_alone(
        cluster: Deployment, testbed: Testbed) -> None:
    host = _follower(cluster)
    init, etcd = testbed.init_pid(host), _etcd_pid(testbed, host)
    testbed.reboot(host)
    assert testbed.init_pid(host) != init  # a new systemd: the host did boot again
    # no dcsctl command in between: systemd started etcd at boot
    assert testbed.ssh(host, "systemctl is-active etcd").stdout.strip() == "active"
    assert testbed.ssh(host, "systemctl show -p NRestarts --value etcd").stdout.strip() == "0"
    assert _etcd_pid(testbed, host) not in ("", "0", etcd)
    view = wait_healthy(cluster)
    assert next(m for m in view["members"] if m["name"] == host)["healthy"] is True
    assert hashes_equal(cluster)


def test_a_power_cut_member_keeps_its_data_and_rejoins(cluster: Deployment,
                                                       testbed: Testbed) -> None:
    host = _follower(cluster)
    for index in range(20):
        cluster.dcsctl("put", f"/power/{index:02d}", "x")
    before = _etcd_pid(testbed, host)
    assert before not in ("", "0")
    testbed.kill(host)
    cluster.dcsctl("put", "/power/while-down", "x")  # two of three: writes go on
    view = status_of(cluster)
    assert view["healthy"] is False
    assert any(host in p for p in view["problems"]), view["problems"]
    testbed.boot(host)
    wait_healthy(cluster)
    assert _etcd_pid(testbed, host) not in ("", "0")  # started by systemd at boot
    keys = cluster.agent("keys", "/power/")
    assert len(keys) == 21  # type: ignore[arg-type]
    assert hashes_equal(cluster)


def test_power_cut_of_the_leaders_host_under_a_writer_loses_no_acknowledged_write(
        cluster: Deployment, testbed: Testbed) -> None:
    leader = wait_healthy(cluster)["leader"]
    assert isinstance(leader, str)
    writer, head = cluster.writing("/cut/", acks_first=50)
    cut_at = time.monotonic()
    testbed.kill(leader)
    rest, errors = writer.communicate(timeout=120)
    assert writer.returncode == 0, errors
    lines = rest.splitlines()
    first_ack_after = next((i for i, line in enumerate(lines) if line.startswith("ack ")), None)
    assert first_ack_after is not None, "no write succeeded after the leader's host died"
    testbed.boot(leader)
    wait_healthy(cluster)
    acked, failed, lost = acked_and_lost(cluster, "".join(head) + rest, "/cut/")
    assert lost == 0, f"{lost} of {acked} acknowledged writes lost"
    assert acked > 0
    assert hashes_equal(cluster)
    print(f"leader {leader} power-cut after 50 acks: {acked} acked, {failed} failed "
          f"or unknown, 0 lost; cut-to-boot {time.monotonic() - cut_at:.1f} s")
