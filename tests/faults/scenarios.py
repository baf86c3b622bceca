"""Fault scenarios against a real lab cluster, each returning the figures it measured.

Used by the fault tests (a few rounds) and by scripts/reliability-report (the published
figures in docs/reliability.md), so both run the very same code.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

from dcsctl.etcd.model import EndpointStatus
from dcsctl.ops.context import Cluster
from tests.conftest import LabCluster
from tests.integration.writer import BackgroundWriter
from tests.support import cluster_of, poll

DEADLINE_S = 30.0


def _leader(cluster: Cluster, exclude: str | None = None) -> tuple[str, int] | None:
    """(name, pid) of the current leader, as the members themselves report it."""
    with cluster.admin_client(timeout=0.5) as client:
        statuses = client.statuses()
    for member, status in zip(cluster.spec.members, statuses, strict=True):
        if isinstance(status, EndpointStatus) and status.is_leader and member.name != exclude:
            pid = cluster.service(member.name).running_pid()
            if pid is not None:
                return member.name, pid
    return None


def _wait(check: object, what: str, timeout: float = DEADLINE_S) -> float:
    """Seconds until `check()` holds; fails after `timeout`."""
    assert callable(check)
    started = time.monotonic()
    poll(lambda: bool(check()) or None, timeout, what, interval=0.02)
    return time.monotonic() - started


@dataclass
class AckAudit:
    acked: int
    unknown: int  # failed at the client: may or may not be committed
    lost: int  # acknowledged but not readable afterwards: must be 0


def audit(lab: LabCluster, writer: BackgroundWriter) -> AckAudit:
    """Linearizable read of every acknowledged key."""
    with cluster_of(lab).admin_client(timeout=10) as client:
        present = {kv.key for kv in client.get_prefix(writer.prefix, limit=0)}
    lost = [key for key in writer.acked if key not in present]
    return AckAudit(len(writer.acked), len(writer.failed), len(lost))


def hashes_equal(lab: LabCluster) -> bool:
    """hashkv of every member at one revision: the members hold the same data."""
    cluster = cluster_of(lab)
    with cluster.admin_client(timeout=5) as client:
        revision = client.revision()
        hashes = {client.hash_kv(url, revision)[0] for url in cluster.endpoints()}
    return len(hashes) == 1


@dataclass
class KillRound:
    killed: str
    new_leader_s: float
    first_ack_s: float


@dataclass
class LeaderKills:
    rounds: list[KillRound] = field(default_factory=list)
    audit: AckAudit | None = None
    hashes_equal: bool = False


def leader_kills(lab: LabCluster, rounds: int) -> LeaderKills:
    """kill -9 the leader `rounds` times under a writer; time the election and the first
    acknowledged write after it; bring the member back with `dcsctl up` each time."""
    cluster = cluster_of(lab)
    report = LeaderKills()
    with BackgroundWriter(lab, max_seconds=60 + rounds * 20) as writer:
        for _ in range(rounds):
            writer.wait_acked(50)  # ~1/3 s of steady writing between kills
            leader = _leader(cluster)
            assert leader is not None, "no leader before the kill"
            name, pid = leader
            acks_before = len(writer.acked)
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            new_leader_s = _wait(lambda n=name: _leader(cluster, exclude=n) is not None,
                                 "no new leader")
            _wait(lambda b=acks_before: len(writer.acked) > b, "no write acknowledged")
            first_ack_s = writer.ack_times[acks_before] - killed_at
            report.rounds.append(KillRound(name, new_leader_s, first_ack_s))
            lab.ok("up")  # the killed member rejoins
        writer.wait_acked(10)
    report.audit = audit(lab, writer)
    report.hashes_equal = hashes_equal(lab)
    return report


@dataclass
class QuorumLoss:
    failing_write_s: float
    failing_write_error: str
    status_answered_s: float
    healthy_while_down: int
    recovered_s: float
    audit: AckAudit


def quorum_loss(lab: LabCluster) -> QuorumLoss:
    """Stop 2 of 3: writes must fail within the client's deadline (never hang), the admin
    status still answers by client certificate, and a restart loses no acknowledged write."""
    cluster = cluster_of(lab)
    with BackgroundWriter(lab) as writer:
        writer.wait_acked(20)
        failures_before = len(writer.failed)
        for member in cluster.spec.members[:2]:
            cluster.process(member.name).kill()
        _wait(lambda: len(writer.failed) > failures_before + 1, "writes did not fail")
        failing_write_s = max(writer.fail_durations[failures_before:])
        error = writer.failed[-1].split(": ", 1)[1]
        started = time.monotonic()
        status = lab.dcsctl("status", "--json")
        status_answered_s = time.monotonic() - started
        members = status.json()["members"]
        assert isinstance(members, list)
        healthy_while_down = sum(1 for m in members if m["healthy"])
        restarted = time.monotonic()
        lab.ok("up")
        recovered_s = time.monotonic() - restarted
        writer.wait_acked(20)
    return QuorumLoss(failing_write_s, error, status_answered_s, healthy_while_down,
                      recovered_s, audit(lab, writer))


@dataclass
class HungMember:
    reported_unhealthy_s: float
    recovered_s: float


def hung_member(lab: LabCluster) -> HungMember:
    """SIGSTOP one member: status must call it unhealthy within its deadline; SIGCONT heals."""
    cluster = cluster_of(lab)
    victim = cluster.spec.members[1].name
    pid = cluster.service(victim).running_pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        view = lab.dcsctl("status", "--json")
        reported_unhealthy_s = time.monotonic() - started
        members = {m["name"]: m for m in view.json()["members"]}  # type: ignore[union-attr]
        assert view.code == 5 and members[victim]["healthy"] is False
    finally:
        os.kill(pid, signal.SIGCONT)
    recovered_s = _wait(lambda: lab.dcsctl("status").code == 0, f"{victim} did not recover")
    return HungMember(reported_unhealthy_s, recovered_s)
