"""A new cluster's first start: the member whose peer URL sorts first starts alone and
serves its peer port before the others start (ops/runtime.py: wait_peer_serving), so no
member waits out etcd's 1 s /members timeouts against peers that are bound but not yet
serving (what made `up` on 3.7 1-2 s slower than on 3.5, issue 21)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from dcsctl.etcd.tls import ClientTls, peer_members
from tests.support import cluster_of
from tests.support.lab import LabCluster


def _first_time(log: str, message: str) -> float:
    for line in log.splitlines():
        entry = json.loads(line)
        if entry.get("msg") == message:
            return dt.datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).timestamp()
    raise AssertionError(f"no {message!r} in the log")


def test_first_peer_serves_before_the_others_start(
        lab_factory: Callable[..., LabCluster]) -> None:
    lab = lab_factory()
    document = lab.document()
    document["etcd"] = {"log_level": "info"}  # etcd's start-up lines are info
    lab.spec_file.write_text(yaml.safe_dump(document))
    lab.ok("up")
    logs = {m: (lab.state / "members" / m / "etcd.log").read_text()
            for m in (f"{lab.name}-{i}" for i in range(3))}
    first = min(logs, key=lambda m: lab.addresses()[int(m.rsplit("-", 1)[1])])
    served = _first_time(logs[first], "serving peer traffic")
    for member, log in logs.items():
        if member != first:
            assert _first_time(log, "starting an etcd server") > served, member
    # The probe the start waits on answers with a member's certificate (the peer port
    # admits member certificates only) and refuses the admin's.
    cluster = cluster_of(lab)
    member = cluster.spec.member(first)
    layout = cluster.layout(first)
    own = ClientTls(*(Path(p).read_bytes() for p in (layout.ca_cert, layout.cert, layout.key)),
                    cluster.spec.shared_dns_name)
    answer = json.loads(peer_members(cluster.spec.peer_url(member), own))
    assert sorted(m["name"] for m in answer) == sorted(logs)
    with pytest.raises(OSError):
        peer_members(cluster.spec.peer_url(member), cluster.admin_tls())
    # And the cluster is the same as ever: every member healthy, auth on.
    status = lab.ok("status", "--json").json()
    assert status["alarms"] == [] and len(status["members"]) == 3  # type: ignore[arg-type]
