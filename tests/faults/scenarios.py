"""Fault scenarios against a real lab cluster, each returning the figures it measured.

Used by the fault tests and by scripts/reliability_report.py (the published figures in
docs/reliability.md), so both run the very same code. Every scenario runs the recorded
workload of tests/support/history.py under a prefix of its own (asserted empty before it
starts), counts the writes acknowledged *after the fault took effect* (after the new
leader was seen, after the operation began), and has histcheck judge the whole history.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from dcsctl.etcd.model import EndpointStatus
from dcsctl.ops.cluster import Cluster
from tests.support import cluster_of, is_gone, poll
from tests.support.history import Workload, assert_empty, check_history, lab_connect
from tests.support.lab import LabCluster

DEADLINE_S = 30.0
MIN_ACKED_DURING = 20  # writes acknowledged after a fault took effect, per fault
# ... during an operation that lasts well under a second (a certificate reload in place,
# compaction and defragmentation of a small database): at ~100 writes/s, a handful.
MIN_ACKED_DURING_QUICK = 3
# The longest stretch without an acknowledged write that an operation which keeps quorum
# may cause on a busy machine: a call stuck on a restarting member ends at the workload's
# 2 s deadline while the other clients go on (measured on an idle one: 0.04-0.06 s for a
# rolling restart); a quorum lost for a member's restart stops every client for longer.
MAX_WRITE_GAP_S = 5.0


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
class HistoryFigures:
    """One scenario's recorded history and histcheck's verdict on it."""

    scenario: str
    prefix: str
    path: Path
    operations: int
    acked_writes: int
    unknown: int  # no answer: may or may not have taken effect
    failed: int  # refused for sure, or a read without an answer
    acked_during: int  # writes acknowledged after the fault took effect, while it lasted
    linearizable: bool
    checker: str  # histcheck's output
    failures: dict[str, int]  # how the unknown and failed calls ended: code -> count
    # operation(): the longest stretch, in seconds, in which no write was acknowledged
    # while the operation ran (None for the other scenarios)
    longest_gap_s: float | None = None

    def row(self) -> str:
        verdict = "**yes**" if self.linearizable else "**NO**"
        return (f"| {self.scenario} | {self.operations} | {self.acked_writes} | "
                f"{self.acked_during} | {self.unknown} | {verdict} |")


def _prefix(scenario: str) -> str:
    return f"/history/{scenario}/"


@contextlib.contextmanager
def recorded(lab: LabCluster, scenario: str, workdir: Path,
             max_seconds: float = 300.0) -> Iterator[Workload]:
    """The workload under the scenario's own fresh prefix; its history is written to
    `workdir/<scenario>.jsonl` when the block ends (the check is `finish`'s)."""
    connect = lab_connect(lab)
    prefix = _prefix(scenario)
    assert_empty(connect, prefix)
    with Workload(connect, prefix, workdir / f"{scenario}.jsonl",
                  max_seconds=max_seconds) as workload:
        workload.wait_acked(MIN_ACKED_DURING)  # a fault lands mid-stream
        yield workload


def finish(workload: Workload, scenario: str, acked_during: int) -> HistoryFigures:
    """Judge a stopped workload's history."""
    summary = workload.summary()
    checked = check_history(workload.path)
    assert checked.code in (0, 1), f"histcheck could not judge {workload.path}:\n{checked.output}"
    return HistoryFigures(scenario, workload.prefix, workload.path, summary.operations,
                          summary.acked_writes, summary.unknown, summary.failed, acked_during,
                          checked.linearizable, checked.output, dict(workload.failures))


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
    first_ack_s: float  # kill to the first write acknowledged that was called after it
    acked_during: int  # called after the new leader was seen, before the member rejoined


@dataclass
class LeaderKills:
    rounds: list[KillRound] = field(default_factory=list)
    history: HistoryFigures | None = None
    hashes_equal: bool = False


def leader_kills(lab: LabCluster, rounds: int, workdir: Path) -> LeaderKills:
    """kill -9 the leader `rounds` times under the workload; time the election and the
    first acknowledged write after the kill; at least MIN_ACKED_DURING writes acknowledged
    with the member still down, after the new leader was seen; bring the member back with
    `dcsctl up` each time."""
    cluster = cluster_of(lab)
    report = LeaderKills()
    scenario = f"leader-kill-x{rounds}"
    with recorded(lab, scenario, workdir, max_seconds=120 + rounds * 20) as workload:
        for _ in range(rounds):
            # polled: one status round may miss its 0.5 s on a busy machine
            name, pid = poll(lambda: _leader(cluster), DEADLINE_S, "no leader before the kill")
            killed_at = time.monotonic_ns()
            os.kill(pid, signal.SIGKILL)
            new_leader_s = _wait(lambda n=name: _leader(cluster, exclude=n) is not None,
                                 "no new leader")
            seen = time.monotonic_ns()
            workload.wait_acked(MIN_ACKED_DURING, since_ns=seen)
            first_ack_s = (workload.acked_write_returns(killed_at)[0] - killed_at) / 1e9
            report.rounds.append(KillRound(name, new_leader_s, first_ack_s,
                                           workload.acked_writes(seen)))
            lab.ok("up")  # the killed member rejoins
            workload.wait_acked(MIN_ACKED_DURING, since_ns=time.monotonic_ns())
    report.history = finish(workload, scenario, min(r.acked_during for r in report.rounds))
    report.hashes_equal = hashes_equal(lab)
    return report


@dataclass
class QuorumLoss:
    failing_write_s: float
    status_answered_s: float
    healthy_while_down: int
    acked_while_down: int  # writes called after quorum was gone and acknowledged: must be 0
    recovered_s: float
    history: HistoryFigures


def quorum_loss(lab: LabCluster, workdir: Path) -> QuorumLoss:
    """Stop 2 of 3: writes must fail within the client's deadline (never hang) and none
    called after the loss may be acknowledged; the admin status still answers by client
    certificate; after `dcsctl up`, writes are acknowledged again."""
    cluster = cluster_of(lab)
    scenario = "quorum-loss"
    with recorded(lab, scenario, workdir) as workload:
        pids = []
        for member in cluster.spec.members[:2]:
            pid = cluster.service(member.name).running_pid()
            assert pid is not None
            pids.append(pid)
            os.kill(pid, signal.SIGKILL)
        _wait(lambda: all(is_gone(pid) for pid in pids), "the killed members did not exit")
        lost_at = time.monotonic_ns()
        _wait(lambda: sum(1 for call, _ in list(workload.gave_up) if call >= lost_at) >= 4,
              "writes did not fail")
        failing_write_s = max(end - call for call, end in list(workload.gave_up)
                              if call >= lost_at) / 1e9
        started = time.monotonic()
        status = lab.dcsctl("status", "--json")
        status_answered_s = time.monotonic() - started
        members = status.json()["members"]
        assert isinstance(members, list)
        healthy_while_down = sum(1 for m in members if m["healthy"])
        restarted_ns = time.monotonic_ns()
        restarted = time.monotonic()
        lab.ok("up")
        recovered_s = time.monotonic() - restarted
        back = time.monotonic_ns()
        workload.wait_acked(MIN_ACKED_DURING, since_ns=back)
        # Called after quorum was gone and answered before `up` began: impossible.
        acked_while_down = sum(1 for at in workload.acked_write_returns(lost_at)
                               if at < restarted_ns)
    history = finish(workload, scenario, workload.acked_writes(back))
    return QuorumLoss(failing_write_s, status_answered_s, healthy_while_down, acked_while_down,
                      recovered_s, history)


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


def operation(lab: LabCluster, scenario: str, workdir: Path,
              act: Callable[[Workload], object],
              took_effect: Callable[[], object] | None = None) -> HistoryFigures:
    """A day-two operation under the workload: `took_effect` (default: nothing) brings a
    fault about first (e.g. a member's data lost); `act` is the operation (it is handed the
    running workload). `acked_during`
    counts the writes called after the fault took effect (or the operation began) and
    acknowledged before the operation ended; the callers assert its minimum. Then
    MIN_ACKED_DURING more after it."""
    with recorded(lab, scenario, workdir) as workload:
        if took_effect is not None:
            took_effect()
        effective = time.monotonic_ns()
        act(workload)
        done = time.monotonic_ns()
        returns = [at for at in workload.acked_write_returns(effective) if at <= done]
        workload.wait_acked(MIN_ACKED_DURING, since_ns=done)
    edges = [effective, *returns, done]
    longest_gap_ns = max(later - earlier for earlier, later in itertools.pairwise(edges))
    return replace(finish(workload, scenario, len(returns)),
                   longest_gap_s=longest_gap_ns / 1e9)


def lose_member(lab: LabCluster, name: str) -> None:
    """The fault `member replace` is for: a member killed and its data dir gone."""
    pid = cluster_of(lab).service(name).running_pid()
    assert pid is not None, f"{name} is not running"
    os.kill(pid, signal.SIGKILL)
    poll(lambda: is_gone(pid) or None, 10, f"the killed {name} did not exit")
    shutil.rmtree(lab.state / "members" / name / "data")


def member_replace(lab: LabCluster, name: str, workdir: Path) -> HistoryFigures:
    """Lose a member (killed, data gone), then `dcsctl member replace` it, under the
    workload: writes go on with two of three, during the replacement too."""
    return operation(lab, "member-replace", workdir,
                     lambda _: lab.ok("member", "replace", name, "--yes"),
                     took_effect=lambda: lose_member(lab, name))


@dataclass
class UpgradeChain:
    steps: list[str]
    acked_during: list[int]  # writes acknowledged that were called after each step began
    history: HistoryFigures


def upgrade_chain(lab: LabCluster, chain: list[tuple[str, Path]],
                  workdir: Path) -> UpgradeChain:
    """`dcsctl upgrade` through `chain` ((version, bin dir) per step) under the workload;
    each step's members restart one at a time, so writes go on throughout."""
    during: list[int] = []

    def upgrade(workload: Workload) -> None:
        for version, bin_dir in chain:
            started = time.monotonic_ns()
            done = lab.ok("upgrade", "--to", version, "--bin-dir", str(bin_dir))
            line = ".".join(version.split(".")[:2])
            assert f"cluster version {line}.0" in done.out, done.out
            during.append(workload.acked_writes(started))

    history = operation(lab, "upgrade-chain", workdir, upgrade)
    return UpgradeChain([version for version, _ in chain], during, history)
