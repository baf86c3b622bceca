"""Fault scenarios on the testbed's guide cluster, each returning what it measured.

Used by the testbed tests (one round, short windows) and by
`scripts/reliability_report.py --testbed` (several rounds, 2-minute windows), so both run
the very same code, as tests/faults/scenarios.py does for the lab. A scenario leaves the
network healed (pass or fail) and, but for the windows (the next scenario waits for it),
the cluster healthy; the caller asserts on the figures.
`tag` keeps the keys of one round apart from another's. Each scenario and window records
the workload of tests/testbed/history.py under a prefix of its own (asserted empty before
it starts) and has histcheck judge it; writes acknowledged after the fault took effect are
counted from the moment it did (a new leader seen, the host cut off), not from the cut.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dcsctl.spec import parse
from dcsctl.targets.protocol import Check
from dcsctl.targets.ssh.checks import rtt_check
from tests.faults.scenarios import MIN_ACKED_DURING, HistoryFigures
from tests.support.lab import VENV_BIN
from tests.testbed.bed import Testbed
from tests.testbed.deployment import (
    Deployment,
    hashes_equal,
    status_of,
    wait_healthy,
)
from tests.testbed.history import monotonic_of, recording


def follower(cluster: Deployment) -> str:
    leader = wait_healthy(cluster)["leader"]
    return next(h for h in cluster.bed.hosts() if h != leader)


def leader_of(cluster: Deployment) -> str:
    leader = wait_healthy(cluster)["leader"]
    assert isinstance(leader, str)
    return leader


def etcd_pid(testbed: Testbed, host: str) -> str:
    return testbed.ssh(host, "systemctl show -p MainPID --value etcd").stdout.strip()


def _member(view: dict[str, object], name: str) -> dict[str, object]:
    members = view["members"]
    assert isinstance(members, list)
    return next(m for m in members if m["name"] == name)


# -- host faults --

@dataclass
class Reboot:
    host: str
    new_init: bool  # a new systemd: the host did boot again
    etcd_active: bool
    etcd_restarts: str  # NRestarts: "0" when systemd started etcd once, at boot
    new_etcd_pid: bool
    member_healthy: bool
    healthy_s: float  # `systemctl reboot` to `dcsctl status` healthy
    hashes_equal: bool


def reboot_member(cluster: Deployment, testbed: Testbed) -> Reboot:
    host = follower(cluster)
    init, etcd = testbed.init_pid(host), etcd_pid(testbed, host)
    started = time.monotonic()
    testbed.reboot(host)
    new_init = testbed.init_pid(host) != init
    # no dcsctl command in between: systemd started etcd at boot
    active = testbed.ssh(host, "systemctl is-active etcd").stdout.strip() == "active"
    restarts = testbed.ssh(host, "systemctl show -p NRestarts --value etcd").stdout.strip()
    new_pid = etcd_pid(testbed, host) not in ("", "0", etcd)
    view = wait_healthy(cluster)
    healthy_s = time.monotonic() - started
    return Reboot(host, new_init, active, restarts, new_pid,
                  _member(view, host)["healthy"] is True, healthy_s, hashes_equal(cluster))


@dataclass
class PowerCut:
    host: str
    reported: bool  # status said unhealthy and named the host while it was off
    etcd_started: bool  # by systemd at boot
    keys: int  # of 21 written (20 before, 1 while the host was off)
    healthy_s: float  # boot to healthy
    hashes_equal: bool
    history: HistoryFigures | None = None  # the workload's, while the host was off


def power_cut_member(cluster: Deployment, testbed: Testbed, tag: str = "") -> PowerCut:
    host = follower(cluster)
    prefix = f"/power{tag}/"
    assert cluster.agent("keys", prefix) == [], f"{prefix} is not fresh"
    for index in range(20):
        cluster.dcsctl("put", f"{prefix}{index:02d}", "x")
    assert etcd_pid(testbed, host) not in ("", "0")
    with recording(cluster, f"power-cut{tag}") as run:
        testbed.kill(host)
        try:
            run.took_effect()
            cluster.dcsctl("put", f"{prefix}while-down", "x")  # two of three: writes go on
            run.wait_acked(MIN_ACKED_DURING)
            view = status_of(cluster)
            problems = view["problems"]
            assert isinstance(problems, list)
            reported = view["healthy"] is False and any(host in p for p in problems)
        finally:
            booted = time.monotonic()
            testbed.boot(host)
    wait_healthy(cluster)
    healthy_s = time.monotonic() - booted
    started = etcd_pid(testbed, host) not in ("", "0")
    keys = cluster.agent("keys", prefix)
    assert isinstance(keys, list)
    return PowerCut(host, reported, started, len(keys), healthy_s, hashes_equal(cluster),
                    run.history)


@dataclass
class UnderWriter:
    """A fault on the leader's host under the recorded workload (tests/testbed/history.py)."""
    leader: str
    writer_error: str  # the workload's error when a client crashed, "" when it ran clean
    acked_after: int  # writes called after the new leader was seen and acknowledged while
    # the fault lasted
    new_leader_s: float | None  # fault to a member other than the old leader naming a
    # new one (its own status, polled every 20 ms); None: not within a minute
    longest_pause_s: float  # the longest gap between two acknowledged writes
    new_leader: str | None  # during the fault (None: not asked, or no leader)
    leader_after: str | None  # once healthy again after the fault
    acked: int
    failed: int  # calls refused or without an answer (an unknown write may be committed)
    linearizable: bool  # histcheck's verdict on the whole history
    hashes_equal: bool
    history: HistoryFigures | None = None


def _leader_watch(cluster: Deployment, old: str) -> subprocess.Popen[str]:
    """probe.py new-leader on the control side, polling already when this returns."""
    cluster.bed.net.check_isolation(cluster.bed.all_hosts())
    watch = subprocess.Popen(
        ["ip", "netns", "exec", cluster.bed.net.control_ns, str(VENV_BIN / "python"), "-m",
         "tests.testbed.probe", str(cluster.spec_file), "new-leader", old, "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.environ,
        cwd=str(VENV_BIN.parent.parent))
    assert watch.stdout is not None
    if watch.stdout.readline() != "ready\n":  # bounded: the probe prints or exits
        _, errors = watch.communicate(timeout=60)
        raise AssertionError(f"the leader watch did not start: {errors}")
    return watch


def _leader_seen(watch: subprocess.Popen[str], cut_at: float) -> float | None:
    out, _ = watch.communicate(timeout=120)
    seen = json.loads(out)
    return None if seen["at"] is None else float(seen["at"]) - cut_at


def _fault_on_leader(cluster: Deployment, name: str, cut: Callable[[str], None],
                     undo: Callable[[str], None], *, ask_leader: bool) -> UnderWriter:
    """`cut` the leader's host under the recorded workload; once another member names a
    new leader, MIN_ACKED_DURING writes called from then on must be acknowledged while the
    host is still cut; then `undo` it. `ask_leader`: the cut host still runs, so `status`
    during the cut says who leads meanwhile."""
    leader = leader_of(cluster)
    new_leader = None
    new_leader_s = None
    with recording(cluster, name) as run:
        watch = _leader_watch(cluster, leader)
        cut_at = time.time()
        cut(leader)
        try:
            new_leader_s = _leader_seen(watch, cut_at)
            assert new_leader_s is not None, "no other member named a new leader within 60 s"
            run.effective_ns = monotonic_of(cut_at + new_leader_s)
            run.wait_acked(MIN_ACKED_DURING)
            if ask_leader:
                new_leader = status_of(cluster)["leader"]
        finally:
            undo(leader)
    history = run.history
    assert history is not None
    view = wait_healthy(cluster)
    leader_after = view["leader"]
    assert leader_after is None or isinstance(leader_after, str)
    assert new_leader is None or isinstance(new_leader, str)
    acks = run.acked_since(0)
    return UnderWriter(
        leader, run.error, history.acked_during, new_leader_s,
        max((b - a for a, b in itertools.pairwise(acks)), default=0) / 1e9, new_leader,
        leader_after, history.acked_writes, history.unknown + history.failed,
        history.linearizable, hashes_equal(cluster), history)


def leader_power_cut(cluster: Deployment, testbed: Testbed, tag: str = "") -> UnderWriter:
    return _fault_on_leader(cluster, f"leader-power-cut{tag}", testbed.kill, testbed.boot,
                            ask_leader=False)


# -- partitions --

@dataclass
class FollowerPartition:
    host: str
    writes: int  # `dcsctl put`s that succeeded while the host was cut off
    status_unhealthy: bool
    leader_kept: bool
    member_unhealthy: bool
    problem_named: bool
    keys: int
    healed_s: float  # heal to healthy
    hashes_equal: bool
    history: HistoryFigures | None = None  # the workload's, while the host was cut off


def follower_partition(cluster: Deployment, testbed: Testbed, tag: str = "",
                       writes: int = 30) -> FollowerPartition:
    leader = leader_of(cluster)
    host = next(h for h in testbed.hosts() if h != leader)
    prefix = f"/split{tag}/"
    assert cluster.agent("keys", prefix) == [], f"{prefix} is not fresh"
    with recording(cluster, f"follower-partition{tag}") as run:
        testbed.net.partition(host)
        try:
            run.took_effect()
            for index in range(writes):
                cluster.dcsctl("put", f"{prefix}{index:02d}", "x")
            run.wait_acked(MIN_ACKED_DURING)
            view = status_of(cluster)
        finally:
            testbed.net.heal(host)
            healed = time.monotonic()
    problems = view["problems"]
    assert isinstance(problems, list)
    wait_healthy(cluster)
    healed_s = time.monotonic() - healed
    keys = cluster.agent("keys", prefix)
    assert isinstance(keys, list)
    return FollowerPartition(host, writes, view["healthy"] is False, view["leader"] == leader,
                             _member(view, host)["healthy"] is False,
                             any(host in p for p in problems), len(keys), healed_s,
                             hashes_equal(cluster), run.history)


def leader_partition(cluster: Deployment, testbed: Testbed, tag: str = "") -> UnderWriter:
    return _fault_on_leader(cluster, f"leader-partition{tag}", testbed.net.partition,
                            testbed.net.heal, ask_leader=True)


# -- a degraded network over a window --

@dataclass
class Window:
    fault: str  # in words, e.g. "100 ms ± 0 ms delay on dcs-01 (the leader)"
    seconds: float
    leader_changes: int  # the most any member saw during the window
    acked: int  # writes acknowledged by the recorded workload over the window
    failed: int  # calls refused or without an answer
    linearizable: bool
    # "a->b": etcd's prober (a smoothed RTT, sampled every 30 s) averaged over the window
    rtt_ms: dict[str, float] = field(default_factory=dict)
    # from the control side, before the writer: member -> median ms of a GET on an open
    # TLS connection (what the delay delays) and of a TCP connect (what it does not)
    request_ms: dict[str, float] = field(default_factory=dict)
    connect_ms: dict[str, float] = field(default_factory=dict)
    pair_rtt_ms: float = 0.0  # the member-to-member RTT dcsctl's rule was fed
    rtt_check: Check | None = None  # dcsctl's rule for that RTT and the spec's timeout
    history: HistoryFigures | None = None

    @property
    def success_rate(self) -> float:
        return self.acked / max(1, self.acked + self.failed)


def _probe(cluster: Deployment, command: str) -> dict[str, dict[str, object] | None]:
    result = cluster.bed.run([str(VENV_BIN / "python"), "-m", "tests.testbed.probe",
                              str(cluster.spec_file), command], env=cluster.environ,
                             timeout=120)
    answer = json.loads(result.stdout)
    assert isinstance(answer, dict)
    return answer


def _window(cluster: Deployment, fault: str, seconds: float, name: str) -> Window:
    """The recorded workload for `seconds` under the fault already in place, under a
    prefix of its own; etcd's counters before and after it."""
    wait_healthy(cluster)
    before = _probe(cluster, "metrics")
    trips = _probe(cluster, "rtt")
    with recording(cluster, name, max_seconds=seconds, run_out=True) as run:
        pass  # the fault is in place: the whole window counts
    history = run.history
    assert history is not None
    after = _probe(cluster, "metrics")
    changes, rtts = 0, {}
    for member, now in after.items():
        then = before.get(member)
        if not (isinstance(now, dict) and isinstance(then, dict)):
            continue
        changes = max(changes, int(float(str(now["leader_changes"]))
                                   - float(str(then["leader_changes"]))))
        rtt_now, rtt_then = now["rtt"], then["rtt"]
        assert isinstance(rtt_now, dict) and isinstance(rtt_then, dict)
        for peer, (total, count) in rtt_now.items():
            old_total, old_count = rtt_then.get(peer, (0.0, 0.0))
            if count > old_count:
                rtts[f"{member}->{peer}"] = (total - old_total) / (count - old_count) * 1000
    answered = {m: t for m, t in trips.items() if isinstance(t, dict)}
    return Window(fault, seconds, changes, history.acked_writes,
                  history.unknown + history.failed, history.linearizable, rtts,
                  {m: float(str(t["request_ms"])) for m, t in answered.items()},
                  {m: float(str(t["connect_ms"])) for m, t in answered.items()},
                  history=history)


def delay_window(cluster: Deployment, testbed: Testbed, ms: float, jitter_ms: float = 0,
                 seconds: float = 20, tag: str = "", every_host: bool = False) -> Window:
    """The leader's host (or every host) delayed; leader changes, etcd's peer round trips
    and writes over the window, and what dcsctl's rtt rule says of the slowest RTT."""
    leader = leader_of(cluster)
    hosts = list(testbed.hosts()) if every_host else [leader]
    where = "every host" if every_host else f"{leader} (the leader)"
    for host in hosts:
        testbed.net.delay(host, ms, jitter_ms)
    try:
        window = _window(cluster, f"{ms:g} ms ± {jitter_ms:g} ms delay on {where}", seconds,
                         f"delay-{ms:g}ms{'-all' if every_host else ''}{tag}")
    finally:
        for host in hosts:
            testbed.net.heal(host)
    # dcsctl's rule fed the slowest request round trip measured in this window: a member
    # pair with the delayed host sees the same delay, twice it when both ends are delayed
    # (the control side never is); etcd's prober RTT is a smoothed value that lags a
    # change of delay by tens of seconds, so it is reported, not used
    if window.request_ms:
        slowest = max(window.request_ms, key=lambda m: window.request_ms[m])
        window.pair_rtt_ms = window.request_ms[slowest] * (2 if every_host else 1)
        timeout = parse(cluster.spec_file.read_text()).etcd.election_timeout_ms
        window.rtt_check = rtt_check(slowest, timeout, {"a peer": window.pair_rtt_ms})
    return window


def loss_window(cluster: Deployment, testbed: Testbed, percent: float, seconds: float = 20,
                tag: str = "") -> Window:
    """`percent` of the frames to and from the leader's host dropped (nftables, in the
    bridge): leader changes and the writer's success rate over the window."""
    leader = leader_of(cluster)
    testbed.net.loss(leader, percent)
    try:
        window = _window(cluster, f"{percent:g} % loss on {leader} (the leader)", seconds,
                         f"loss-{percent:g}pct{tag}")
    finally:
        testbed.net.heal(leader)
    return window
