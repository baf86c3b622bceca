"""Network faults between the guide's hosts: a partitioned follower, a partitioned leader
(frames dropped in the bridge, so both sides see silence), a host whose SSH is down while
its etcd serves, and a slow or lossy network over a short window (delay is a TCP-stream
delay by userspace relays: this kernel has no netem; see net.py). The scenarios are
tests/testbed/scenarios.py, which scripts/reliability_report.py --testbed runs longer."""

from __future__ import annotations

import json
import time

import yaml

from dcsctl.targets.protocol import Verdict
from tests.faults.scenarios import MIN_ACKED_DURING
from tests.support.lab import VENV_BIN
from tests.testbed import scenarios
from tests.testbed.bed import Testbed
from tests.testbed.deployment import Deployment, wait_healthy

WINDOW_S = 15  # CI; the report's windows are 2 minutes


def test_a_partitioned_follower_lets_writes_go_on_and_catches_up_after_heal(
        cluster: Deployment, testbed: Testbed) -> None:
    cut = scenarios.follower_partition(cluster, testbed)
    assert cut.status_unhealthy and cut.leader_kept
    assert cut.member_unhealthy and cut.problem_named
    assert cut.keys == cut.writes == 30
    assert cut.hashes_equal
    assert cut.history is not None and cut.history.linearizable, cut.history
    assert cut.history.acked_during >= MIN_ACKED_DURING


def test_a_partitioned_leader_is_replaced_and_no_acknowledged_write_is_lost(
        cluster: Deployment, testbed: Testbed) -> None:
    cut = scenarios.leader_partition(cluster, testbed)
    assert cut.writer_error == ""
    # Counted from the new leader seen, the old one still cut off.
    assert cut.acked_after >= MIN_ACKED_DURING
    assert cut.new_leader not in (None, cut.leader)
    assert cut.leader_after != cut.leader  # the old leader stepped down, stayed a follower
    assert cut.history is not None
    assert cut.linearizable, cut.history.checker
    assert cut.hashes_equal
    assert cut.new_leader_s is not None
    print(f"leader {cut.leader} partitioned: new leader after {cut.new_leader_s:.2f} s, "
          f"longest pause between acks {cut.longest_pause_s:.2f} s, new leader "
          f"{cut.new_leader}; {cut.acked} acked, {cut.failed} failed or unknown, linearizable")


def test_status_answers_from_etcd_when_a_hosts_ssh_is_down(
        cluster: Deployment, testbed: Testbed) -> None:
    """sshd unreachable (port 22 dropped), etcd serving: status shows every member healthy
    and names the host, without waiting out the spec's SSH connect timeout."""
    wait_healthy(cluster)
    slow = cluster.spec_file.with_name("slow-ssh.yaml")
    document = yaml.safe_load(cluster.spec_file.read_text())
    document["ssh"]["connect_timeout_s"] = 30
    slow.write_text(yaml.safe_dump(document))
    testbed.net.block_ssh("dcs-02")
    try:
        started = time.monotonic()
        answer = cluster.bed.run([str(VENV_BIN / "dcsctl"), "status", "--json", "-f",
                                  str(slow)], env=cluster.environ, check=False, timeout=120)
        took = time.monotonic() - started
    finally:
        testbed.net.heal("dcs-02")
    view = json.loads(answer.stdout)
    assert all(m["healthy"] for m in view["members"]), view
    assert scenarios._member(view, "dcs-02")["pid"] is None
    assert scenarios._member(view, "dcs-00")["pid"] is not None
    assert any("dcs-02" in p and "SSH" in p for p in view["problems"]), view["problems"]
    # a bound, not a speed target: before the fix this waited the whole connect timeout
    assert took < 30, f"status took {took:.1f} s: the SSH connect timeout set its pace"
    print(f"status with dcs-02's SSH down: {took:.1f} s (connect timeout 30 s)")


def _show(window: scenarios.Window) -> str:
    rtts = ", ".join(f"{pair} {ms:.0f}" for pair, ms in sorted(window.rtt_ms.items()))
    return (f"{window.fault}, {window.seconds:g} s: {window.leader_changes} leader changes, "
            f"{window.acked} acked / {window.failed} failed, linearizable "
            f"{window.linearizable}; "
            f"etcd peer RTT ms: {rtts or 'no sample'}; request ms "
            f"{ {m: round(ms, 1) for m, ms in window.request_ms.items()} }; connect ms "
            f"{ {m: round(ms, 1) for m, ms in window.connect_ms.items()} }")


def test_a_delayed_leader_host_raises_the_peer_round_trip_by_the_delay(
        cluster: Deployment, testbed: Testbed) -> None:
    """100 ms on the leader's host: a request to the leader on an open connection takes
    ~100 ms more, to the others not; a TCP connect (what preflight's rtt probe times) does
    not (the relay's kernel answers the handshake); dcsctl's rtt rule, fed the measured
    RTT, warns for the spec's default election timeout (1000 ms < 10 x ~100 ms)."""
    window = scenarios.delay_window(cluster, testbed, 100, seconds=WINDOW_S)
    print(_show(window))
    leader = window.fault.split(" on ")[1].split()[0]
    assert set(window.request_ms) == set(testbed.hosts()), window.request_ms
    # Relative to the members without the delay, so that a busy machine's own latency
    # (the same on every host) moves neither side of a bound.
    delayed = window.request_ms[leader]
    undelayed = max(ms for m, ms in window.request_ms.items() if m != leader)
    assert 95 <= delayed < 100 + 60 + undelayed, window.request_ms
    assert undelayed < delayed - 50, window.request_ms  # the control: no delay elsewhere
    # the testbed's blind spot: the relay's kernel answers the handshake undelayed
    assert window.connect_ms[leader] < delayed - 50, window.connect_ms
    assert window.acked >= MIN_ACKED_DURING and window.linearizable, window.history
    assert window.rtt_check is not None and window.rtt_check.verdict is Verdict.WARN


def test_a_jittered_delay_and_a_lossy_leader_host_let_writes_go_on(
        cluster: Deployment, testbed: Testbed) -> None:
    """50 ± 10 ms, then 5 % loss, on the leader's host: writes go on, nothing is lost; the
    leader changes are counted (printed), not asserted: the figures are the report's."""
    delayed = scenarios.delay_window(cluster, testbed, 50, 10, seconds=WINDOW_S)
    print(_show(delayed))
    assert delayed.acked >= MIN_ACKED_DURING and delayed.linearizable, delayed.history
    assert delayed.request_ms[delayed.fault.split(" on ")[1].split()[0]] >= 40
    lossy = scenarios.loss_window(cluster, testbed, 5, seconds=WINDOW_S)
    print(_show(lossy) + f", write success {lossy.success_rate:.1%}")
    assert lossy.acked >= MIN_ACKED_DURING and lossy.linearizable, lossy.history
