"""Patroni across the network: a real Patroni + PostgreSQL on the control side of the
testbed, on the guide's etcd cluster with dcsctl's Patroni user, certificates and
`etcd3:` section. A partitioned follower etcd host and then a partitioned leader etcd host
(frames dropped in the bridge) must not demote the Patroni primary.

What is sampled (tests/testbed/agent.py `patroni`, every 0.5 s, bounded in time): Patroni's
role and PostgreSQL's start time from its REST API, the leader key and its lease's TTL
from etcd. Each fault is held until Patroni has renewed its lock through it: a "leader with
the lock" line in Patroni's log after the cut (an HA loop that reached etcd) and the lease's
TTL going back up between two samples read after the cut was in place (Patroni's
keepalive). A new etcd leader may extend every lease once on promotion; the sampler's reads
are linearizable, so its first answer after the leader's cut comes from the new leader,
after that extension: only rises from there on count.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dcsctl.wait import wait_until
from tests.patroni.harness import PATRONI_BIN, PatroniNode, patroni_node
from tests.support import end_by_closing_stdin
from tests.support.lab import VENV_BIN
from tests.testbed.bed import Testbed
from tests.testbed.deployment import Deployment, wait_healthy

SCOPE = "demo"
NODE = "pg0"
API = "http://127.0.0.1:8008"  # the control side's own loopback: a namespace of its own
WATCH_MAX_S = 240  # the sampler's own bound; the test stops it sooner
RENEWAL_TIMEOUT_S = 45  # Patroni's loop_wait is 10 s, and a request may wait 3.3 s per host
LOCK_LINE = f"I am ({NODE}), the leader with the lock"


class Watch:
    """The sampler, on the control side, writing JSON lines to a file."""

    def __init__(self, deployment: Deployment, out: Path) -> None:
        self.out = out
        deployment.bed.net.check_isolation(deployment.bed.all_hosts())
        with out.open("w") as sink:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", deployment.bed.net.control_ns,
                 str(VENV_BIN / "python"), "-m", "tests.testbed.agent",
                 str(deployment.spec_file), "patroni", SCOPE, API, str(WATCH_MAX_S)],
                stdin=subprocess.PIPE, stdout=sink, stderr=subprocess.PIPE, text=True,
                env=deployment.environ, cwd=str(VENV_BIN.parent.parent))

    def samples(self) -> list[dict[str, object]]:
        lines = self.out.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def since(self, when: float) -> list[dict[str, object]]:
        return [s for s in self.samples() if float(str(s["t"])) >= when]

    def stop(self) -> str:
        """Close its stdin (it ends at once) and return what it printed on stderr."""
        return end_by_closing_stdin(self.process, timeout=30)


def _log_lines(node: PatroniNode, since: float, until: float = float("inf")) -> list[str]:
    """Patroni's log lines stamped in [since, until) (it stamps local time to the
    millisecond, this machine's clock); continuation lines go with the line before."""
    found, stamp = [], 0.0
    for line in (node.workdir / "patroni.log").read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):  # a traceback's line: keeps the stamp before
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if since <= stamp < until:
            found.append(line)
    return found


def _lock_lines_since(node: PatroniNode, when: float) -> int:
    return sum(LOCK_LINE in line for line in _log_lines(node, when))


def _ttl_rises_since(watch: Watch, when: float) -> int:
    """Rises of the lease's TTL between answers taken after `when` (a sample's time is
    taken before its reads)."""
    ttls = [s.get("ttl") for s in watch.since(when)]
    seen = [int(str(t)) for t in ttls if t is not None]
    return sum(b > a for a, b in itertools.pairwise(seen))


def _hold_until_renewed(watch: Watch, node: PatroniNode, when: float) -> None:
    def renewed() -> bool:
        return _lock_lines_since(node, when) > 0 and _ttl_rises_since(watch, when) > 0

    wait_until(renewed, timeout=RENEWAL_TIMEOUT_S, interval=0.5,
               what="Patroni did not renew its leader lock through the fault",
               last_error=lambda: f"{_ttl_rises_since(watch, when)} TTL rises; "
                                  + node.log_tail(8))


@pytest.fixture
def patroni(cluster: Deployment, testbed: Testbed, tmp_path: Path
            ) -> Iterator[tuple[PatroniNode, Watch]]:
    if not (PATRONI_BIN / "patroni").exists():
        pytest.fail("Patroni is not installed in .tools/patroni: run scripts/setup")
    wait_healthy(cluster)
    bundle = tmp_path / "bundle"
    cluster.dcsctl("patroni", "add", SCOPE)
    cluster.dcsctl("patroni", "config", SCOPE, "--node", NODE, "--out", str(bundle))
    section = yaml.safe_load((bundle / "etcd3.yml").read_text())["etcd3"]
    testbed.net.check_isolation(testbed.all_hosts())
    with patroni_node(SCOPE, NODE, "127.0.0.1", section, bundle,
                      netns=testbed.net.control_ns) as node:
        watch = Watch(cluster, tmp_path / "samples.jsonl")
        try:
            wait_until(lambda: any(s.get("role") == "primary" and s.get("state") == "running"
                                   and s.get("lock") == NODE for s in watch.samples()),
                       timeout=120, interval=0.5, what="Patroni did not become primary",
                       last_error=lambda: node.log_tail(15))
            yield node, watch
        finally:
            watch.stop()


def test_partitioning_a_follower_then_the_leader_etcd_host_never_demotes_patroni(
        cluster: Deployment, testbed: Testbed,
        patroni: tuple[PatroniNode, Watch]) -> None:
    node, watch = patroni
    started = float(str(watch.samples()[-1]["t"]))
    leader = cluster.leader()
    assert isinstance(leader, str)
    follower = next(h for h in testbed.hosts() if h != leader)

    timeline: list[str] = []
    for host in (follower, leader):
        testbed.net.partition(host)
        cut = datetime.datetime.now().timestamp()  # samples from here on see the cut
        try:
            _hold_until_renewed(watch, node, cut)
        finally:
            testbed.net.heal(host)
        healed = datetime.datetime.now().timestamp()
        timeline.append(f"{host} cut {healed - cut:.1f} s")
        wait_healthy(cluster)  # caught up: the next cut must not take quorum with it
    _hold_until_renewed(watch, node, healed)  # and renewed after the last heal
    ended = datetime.datetime.now().timestamp()

    # the positive control: the sampler sees Patroni go (it releases its lock on the way)
    node.stop()
    wait_until(lambda: any(s.get("role") == "unreachable" and s.get("lock") is None
                           and "etcd_error" not in s for s in watch.since(ended)),
               timeout=30, interval=0.5, what="the sampler did not see Patroni stop")
    errors = watch.stop()

    samples = [s for s in watch.since(started) if float(str(s["t"])) < ended]
    # A REST API too slow to answer in time on a busy machine is no answer, not a
    # demotion: most samples must answer, and every answer says primary.
    replied = [s for s in samples if s.get("role") != "unreachable"]
    roles = [s.get("role") for s in replied]
    assert len(replied) >= len(samples) / 2 and set(roles) == {"primary"}, (
        [s.get("role") for s in samples], errors, node.log_tail(20))
    # a demotion restarts PostgreSQL: its start time and timeline never changed
    assert len({s.get("pg_start") for s in replied}) == 1, replied
    assert len({s.get("timeline") for s in replied}) == 1, replied
    answered = [s for s in samples if "etcd_error" not in s]
    assert answered and all(s.get("lock") == NODE for s in answered), answered
    assert all(int(str(s["ttl"])) > 0 for s in answered)
    assert not [line for line in _log_lines(node, 0, ended) if "demot" in line.lower()]
    span = float(str(samples[-1]["t"])) - float(str(samples[0]["t"]))
    print(f"Patroni primary through {', then '.join(timeline)} (etcd leader was {leader}): "
          f"{len(samples)} samples over {span:.0f} s all primary, lowest lease TTL "
          f"{min(int(str(s['ttl'])) for s in answered)} s, "
          f"{len(samples) - len(answered)} etcd reads failed")
