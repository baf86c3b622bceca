"""The init-system seam: a new init system is one class and one registry entry in
`dcsctl.targets.ssh.init_systems`, and nothing else in dcsctl asks which one a host runs.
Proven with an init system that exists only here — runit's shape: a run file per
service that the init system keeps on the host — plugged in for `service.manager`, then
the SSH core flow on real sshd hosts: preflight asks it about the host, `up` writes its
file and starts etcd through its service, `status` sees the members healthy, a change to
its file (which etcd reads at start-up) restarts that member alone, `destroy` takes its
file back."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import ClassVar

import pytest

from dcsctl.services.protocol import Service
from dcsctl.state import PUBLIC
from dcsctl.targets.protocol import Check, Verdict
from dcsctl.targets.ssh import init_systems
from dcsctl.targets.ssh.place import DesiredFile, Place
from tests.support.ssh_clusters import SshCluster

RUN_FILE = "dcsctl-test-init-etcd.run"  # beside the pidfile, in the host's /run


class RunFileInit:
    """Test-only: etcd started detached like `process`, with a run file of its own."""

    name = "run-file"
    services_made: ClassVar[list[str]] = []

    def __init__(self, place: Place) -> None:
        self.place = place
        self.detached = init_systems.DetachedProcess(place)

    def _run_file(self) -> PurePath:
        return self.detached.pidfile.parent / RUN_FILE

    def service(self) -> Service:
        RunFileInit.services_made.append(self.place.member.name)
        return self.detached.service()

    def files(self) -> list[DesiredFile]:
        script = f"#!/bin/sh\nexec {self.place.paths.etcd}\n".encode()
        return [DesiredFile(self._run_file(), script, PUBLIC, None, read_at_start=True)]

    def teardown(self) -> list[PurePath]:
        return [self._run_file(), *self.detached.teardown()]

    def host_check(self, pid1: str) -> Check:
        return Check(self.place.member.name, "init", Verdict.OK,
                     f"run-file init (test): PID 1 is {pid1}")


def test_a_new_init_system_is_one_class_and_one_registry_entry(
        ssh_cluster_factory: Callable[..., SshCluster],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(init_systems.INIT_SYSTEMS, RunFileInit.name, RunFileInit)
    RunFileInit.services_made.clear()
    cluster = ssh_cluster_factory(service={"manager": RunFileInit.name})
    members = list(cluster.roots)

    checks = json.loads(cluster.ok("preflight", "--json").out)["checks"]
    init = {c["member"]: c["detail"] for c in checks if c["check"] == "init"}
    assert set(init) == set(members)
    assert all(detail.startswith("run-file init (test): PID 1 is") for detail in init.values())

    cluster.ok("up")
    status = json.loads(cluster.ok("status", "--json").out)
    assert status["healthy"] is True and len(status["members"]) == 3
    for member, root in cluster.roots.items():
        run_file = root / "run" / RUN_FILE
        assert run_file.read_text().startswith("#!/bin/sh\nexec "), member
    assert set(RunFileInit.services_made) >= set(members)  # etcd went through its service

    # Its run file is read at start-up: changed on one host, that member alone restarts.
    changed, *kept = members
    pids = {member: _pid(cluster.roots[member]) for member in members}
    (cluster.roots[changed] / "run" / RUN_FILE).write_text("#!/bin/sh\nexit 1\n")
    planned = json.loads(cluster.ok("up", "--plan", "--json").out)["hosts"]
    service = {host["member"]: host["service"] for host in planned}
    run_file = {host["member"]: [f["action"] for f in host["files"]
                                 if f["path"].endswith(RUN_FILE)] for host in planned}
    # its file is part of what `up` writes; the others' are as `up` left them (the control)
    assert run_file == {changed: ["update"], **{member: ["unchanged"] for member in kept}}
    assert service[changed].startswith("~ restart etcd"), service
    assert all(service[member] == "= etcd running" for member in kept), service
    again = cluster.ok("up").err
    assert f"restarting {changed}" in again, again
    assert _pid(cluster.roots[changed]) != pids[changed]
    assert all(_pid(cluster.roots[member]) == pids[member] for member in kept)

    cluster.ok("destroy", "--yes")
    assert not any((root / "run" / RUN_FILE).exists() for root in cluster.roots.values())


def _pid(root: Path) -> str:
    """The PID etcd runs as on the host under `root`, from the pidfile of its service."""
    return (root / "run" / "dcsctl-etcd.pid").read_text().split()[0]
