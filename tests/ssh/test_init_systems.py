"""The init-system seam: a new init system is one class and one registry entry in
`dcsctl.targets.ssh.init_systems`, and nothing else in dcsctl asks which one a host runs.
Proven with an init system that exists only here — runit's shape: a run file per
service that the init system keeps on the host — registered under a name of its own and
named by the spec's `service.manager`, then the SSH core flow on real sshd hosts: `up`
builds one per host for the run, its preflight asks it about each host, it writes its
file and starts etcd through its service, the members end healthy; a change to its file
(which etcd reads at start-up) restarts that member alone; `destroy` takes its file
back."""

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
    # each one built: its member, and the SSH connection of the target that built it
    built: ClassVar[list[tuple[str, int]]] = []
    checked: ClassVar[dict[str, str]] = {}  # member: the PID 1 its host reported
    services_made: ClassVar[list[str]] = []

    def __init__(self, place: Place) -> None:
        RunFileInit.built.append((place.member.name, id(place.host)))
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
        RunFileInit.checked[self.place.member.name] = pid1
        return Check(self.place.member.name, "init", Verdict.OK,
                     f"run-file init (test): PID 1 is {pid1}")


def test_a_new_init_system_is_one_class_and_one_registry_entry(
        ssh_cluster_factory: Callable[..., SshCluster],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(init_systems.INIT_SYSTEMS, RunFileInit.name, RunFileInit)
    for made in (RunFileInit.built, RunFileInit.checked, RunFileInit.services_made):
        made.clear()
    cluster = ssh_cluster_factory(service={"manager": RunFileInit.name})
    members = list(cluster.roots)

    # --json: the phases only, not the status view (whose own target builds its own)
    up = {o["name"]: o["note"] for o in json.loads(cluster.ok("up", "--json").out)["phases"]}
    assert up["health"] == "3 of 3 healthy", up
    # one per host for the whole run
    assert sorted(member for member, _ in RunFileInit.built) == sorted(members)
    # up's preflight asked it about each host, with what the host's /proc/1/comm says
    assert set(RunFileInit.checked) == set(members) and all(RunFileInit.checked.values())
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
    run_files = {host["member"]: [f["action"] for f in host["files"]
                                  if f["path"].endswith(RUN_FILE)] for host in planned}
    # its file is part of what `up` writes; the others' are as `up` left them (the control)
    assert run_files == {changed: ["update"], **{member: ["unchanged"] for member in kept}}
    assert service[changed].startswith("~ restart etcd"), service
    assert all(service[member] == "= etcd running" for member in kept), service
    again = {o["name"]: o["note"] for o in json.loads(cluster.ok("up", "--json").out)["phases"]}
    assert again["config"].endswith(f"restarting {changed}"), again
    assert _pid(cluster.roots[changed]) != pids[changed]
    assert all(_pid(cluster.roots[member]) == pids[member] for member in kept)

    cluster.ok("destroy", "--yes")
    assert not any((root / "run" / RUN_FILE).exists() for root in cluster.roots.values())


def _pid(root: Path) -> str:
    """The PID etcd runs as on the host under `root`, from the pidfile of its service."""
    return (root / "run" / "dcsctl-etcd.pid").read_text().split()[0]
