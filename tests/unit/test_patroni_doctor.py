"""`patroni doctor`'s timing verdicts (Patroni's settings against this cluster's etcd) and
its hosts verdict (a node's etcd3 hosts against etcd's member list)."""

from __future__ import annotations

from typing import Any

import pytest

from dcsctl.etcd.model import MemberInfo
from dcsctl.ops.cluster import Context
from dcsctl.ops.patroni_status import HostsGap, _timing_checks, hosts_gap
from dcsctl.patroni_rest import Timing
from dcsctl.spec import from_mapping


def _cluster(election_ms: int, members: int = 3) -> Any:
    spec = from_mapping({
        "etcd": {"election_timeout_ms": election_ms, "heartbeat_interval_ms": 100},
        "members": [{"name": f"dcs-0{i}", "address": f"127.0.0.{10 + i}"}
                    for i in range(members)]})
    return Context({"DCSCTL_HOME": "/nonexistent"}).cluster(spec)


@pytest.mark.parametrize(("timing", "election_ms", "failsafe", "expected"), [
    (Timing(30, 10, 10), 1000, True, {"ttl": "ok", "retry_timeout": "ok",
                                      "failsafe_mode": "ok"}),
    # loop_wait + 2 x retry_timeout = 30 > ttl 20: the lock expires before the leader quits
    (Timing(20, 10, 10), 1000, None, {"ttl": "fail", "retry_timeout": "ok",
                                      "failsafe_mode": "warn"}),
    # a 2 s election (up to 4 s) vs 10 s / 3 hosts = 3.3 s per host
    (Timing(30, 10, 10), 2000, False, {"ttl": "ok", "retry_timeout": "fail",
                                       "failsafe_mode": "warn"}),
])
def test_timing_verdicts(timing: Timing, election_ms: int, failsafe: bool | None,
                         expected: dict[str, str]) -> None:
    checks = _timing_checks(_cluster(election_ms), "db-00", timing, failsafe)
    assert {c.name: str(c.verdict) for c in checks} == expected
    assert all(c.fix for c in checks if str(c.verdict) != "ok")


def _member(name: str, url: str, *, learner: bool = False) -> MemberInfo:
    return MemberInfo(1, name, (), (url,) if url else (), learner)


LIVE = [_member("dcs-0", "https://10.0.0.10:2379"), _member("dcs-1", "https://10.0.0.11:2379"),
        _member("dcs-2", "https://10.0.0.12:2379"),
        _member("", ""),  # added, not started: serves nothing yet
        _member("dcs-4", "https://10.0.0.14:2379", learner=True)]


@pytest.mark.parametrize(("listed", "missing", "extra"), [
    (["10.0.0.10:2379", "10.0.0.11:2379", "10.0.0.12:2379"], (), ()),
    (["10.0.0.10:2379", "10.0.0.11:2379"], ("dcs-2 https://10.0.0.12:2379",), ()),
    (["10.0.0.10:2379", "10.0.0.11:2379", "10.0.0.12:2379", "10.0.0.9:2379"], (),
     ("10.0.0.9:2379",)),
    (["10.0.0.10:2379", "10.0.0.11:2379", "10.0.0.12:2379", "10.0.0.14:2379"], (),
     ("10.0.0.14:2379",)),
])
def test_hosts_are_compared_with_the_live_members(listed: list[str], missing: tuple[str, ...],
                                                  extra: tuple[str, ...]) -> None:
    assert hosts_gap(listed, LIVE) == HostsGap(missing, extra)
