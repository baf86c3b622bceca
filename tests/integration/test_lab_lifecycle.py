"""The lab journey on real etcd: up -> status -> the guide's etcdctl -> down -> up -> destroy."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import is_gone, poll
from tests.support.lab import VENV_BIN, LabCluster
from tests.support.reads import RecordReads


def exports(env_output: str) -> dict[str, str]:
    """Evaluate `dcsctl env` output the way a shell would (export NAME=VALUE lines)."""
    found = {}
    for line in env_output.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name == "PATH":
            continue  # checked separately: it ends in "$PATH", left for the shell
        found[name] = shlex.split(value)[0]
    return found


def guide_etcdctl(environment: dict[str, str], *argv: str) -> str:
    """Run etcdctl exactly as the guide does, with only `dcsctl env`'s exports set."""
    env = {"PATH": f"{VENV_BIN}:{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/")}
    env.update(environment)
    done = subprocess.run(
        ["etcdctl", *argv], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, f"etcdctl {' '.join(argv)}: {done.stderr}"
    return done.stdout


def test_up_status_env_down_up_destroy_keeps_one_cluster(
    lab: LabCluster, record_reads: RecordReads,
) -> None:
    first = lab.ok("up", "--json").json()
    cluster_id = first["cluster_id"]
    assert cluster_id and first["changed"] is True

    view = lab.ok("status", "--json").json()
    assert view["healthy"] is True
    assert view["cluster_id"] == cluster_id
    members = view["members"]
    assert isinstance(members, list) and len(members) == 3
    assert sum(1 for m in members if m["status"]["is_leader"]) == 1
    for member in members:
        # Advertise exactly the https URL listened on (docs/guide-defects.md 1).
        assert member["client_urls"] == [member["endpoint"]]

    environment = exports(lab.ok("env").out)
    assert "ETCDCTL_PASSWORD" not in environment and "ETCDCTL_USER" not in environment
    assert "started" in guide_etcdctl(environment, "member", "list", "-w", "table")
    table = guide_etcdctl(environment, "endpoint", "status", "-w", "table")
    assert table.count("https://127.") == 3
    health = guide_etcdctl(environment, "endpoint", "health", "-w", "table")
    assert health.count("true") == 3
    guide_etcdctl(environment, "put", "foo", "bar")
    assert guide_etcdctl(environment, "get", "--print-value-only", "foo").strip() == "bar"
    assert "Authentication Status: true" in guide_etcdctl(environment, "auth", "status")

    assert lab.ok("put", "patroni/key", "value-1").out.strip() == "OK"
    assert lab.ok("get", "patroni/key").out == "value-1\n"

    ca_before = (lab.state / "pki" / "ca.crt").read_bytes()
    pids = [m["pid"] for m in members]
    lab.ok("down")
    assert all(not Path(f"/proc/{pid}").exists() or is_gone(pid) for pid in pids)
    assert lab.dcsctl("status").code == 5

    again = lab.ok("up", "--json").json()
    assert again["cluster_id"] == cluster_id
    assert (lab.state / "pki" / "ca.crt").read_bytes() == ca_before
    assert lab.ok("get", "foo").out == "bar\n"

    record_reads.take()
    rerun = lab.ok("up")
    assert "no changes" in rerun.err
    assert record_reads.take() == 1  # up and the status it prints: the record read once

    lab.ok("destroy", "--yes")
    assert not lab.state.exists()


@pytest.mark.parametrize("members", [1, 5])
def test_any_member_count_comes_up_healthy(
    lab_factory: Callable[..., LabCluster], members: int
) -> None:
    cluster = lab_factory(members=members)
    cluster.ok("up")
    view = cluster.ok("status", "--json").json()
    listed = view["members"]
    assert isinstance(listed, list)
    assert len(listed) == members
    assert all(m["healthy"] for m in listed)
    assert view["leader"] is not None


def test_rerun_after_member_killed_restarts_it(lab: LabCluster) -> None:
    lab.ok("up")
    view = lab.ok("status", "--json").json()
    victim = view["members"][1]  # type: ignore[index]
    os.kill(victim["pid"], signal.SIGKILL)
    poll(lambda: is_gone(victim["pid"]) or None, 10, "the killed member did not exit")
    result = lab.ok("up", "--json").json()
    start = next(p for p in result["phases"] if p["name"] == "start")  # type: ignore[union-attr]
    assert start["changed"] and victim["name"] in start["note"]
    assert lab.ok("status", "--json").json()["healthy"] is True


def test_status_reports_auth_off_as_unhealthy_and_up_enables_it_again(
    lab_factory: Callable[..., LabCluster],
) -> None:
    lab = lab_factory(members=1)
    lab.ok("up")
    control = lab.ok("status", "--json").json()
    assert control["auth_enabled"] is True and control["healthy"] is True
    assert lab.ok("status").out.rstrip().endswith("auth on")

    # Someone with the admin certificate turns auth off, as the guide's etcdctl can.
    environment = exports(lab.ok("env").out)
    assert "Authentication Disabled" in guide_etcdctl(environment, "auth", "disable")

    off = lab.dcsctl("status", "--json")
    assert off.code == 5
    view = off.json()
    assert view["auth_enabled"] is False and view["healthy"] is False
    problems = view["problems"]
    assert isinstance(problems, list)
    assert any("auth is OFF" in p and "`dcsctl up` enables it again" in p for p in problems)
    table = lab.dcsctl("status")
    assert table.code == 5
    assert "problem: auth is OFF: any client that reaches a client port" in table.out
    assert table.out.rstrip().endswith(f"UNHEALTHY: 1/1 members healthy, leader {lab.name}-0, "
                                       "auth OFF")

    fixed = lab.ok("up")
    assert "auth enabled" in fixed.err  # the auth phase saw it off and acted
    assert lab.ok("status", "--json").json()["auth_enabled"] is True
    assert "Authentication Status: true" in guide_etcdctl(environment, "auth", "status")
