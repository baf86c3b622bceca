"""What runs etcd on an SSH host: one object per init system, picked by the spec's
`service.manager` and reading only what it needs. Each owns everything that differs
between init systems — the service (start, stop, is it active), the files it needs on the
host besides etcd's own (systemd: the unit) and whether etcd reads them at start-up, its
teardown, and the check that the host runs it — so nothing else in dcsctl asks which init
system a host has. The SSH target builds one per host and keeps it for the run. (The shape
of Patroni's DCS backends: one class per backend, one table that picks it.)

A new init system (OpenRC, runit) is one class here and one entry in `INIT_SYSTEMS`, keyed
by the name a spec gives in `service.manager`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath
from typing import Protocol

from dcsctl import render, spec
from dcsctl.errors import SpecError
from dcsctl.services.protocol import Service
from dcsctl.services.remote import RemoteProcessService, SystemdService
from dcsctl.state import PUBLIC
from dcsctl.targets.protocol import Check, Verdict
from dcsctl.targets.ssh.place import DesiredFile, Place


class InitSystem(Protocol):
    name: str

    def service(self) -> Service:
        """Starts, stops and watches the member's etcd."""
        ...

    def files(self) -> list[DesiredFile]:
        """What it needs on the host besides etcd's own files, each saying whether etcd
        reads it at start-up (a unit names the binary: a version that moves it changes
        the unit, and a running member must restart to take it)."""
        ...

    def teardown(self) -> list[PurePath]:
        """Stop managing the member (disable what start enabled); the files to delete."""
        ...

    def host_check(self, pid1: str) -> Check:
        """Can this host run it? `pid1`: the command name of the host's PID 1."""
        ...


class Systemd:
    """etcd as the unit dcsctl writes (`etcd.service`), enabled so it survives a reboot."""

    name = "systemd"

    def __init__(self, place: Place) -> None:
        self.place = place
        self.unit = render.on_host(place.member, spec.SYSTEMD_UNIT)

    def service(self) -> Service:
        return SystemdService(self.place.host, self.unit.name)

    def files(self) -> list[DesiredFile]:
        place = self.place
        unit = render.systemd_unit(place.spec, place.layout, place.paths.etcd)
        return [DesiredFile(self.unit, unit, PUBLIC, "root:root", read_at_start=True)]

    def teardown(self) -> list[PurePath]:
        self.place.host.run(["systemctl", "disable", self.unit.name])
        return [self.unit]

    def host_check(self, pid1: str) -> Check:
        """systemd must be PID 1: a container or a host booted with another init has none,
        and `systemctl` cannot start anything there."""
        member = self.place.member.name
        if pid1 != "systemd":
            return Check(member, "init", Verdict.FAIL,
                         f"PID 1 is {pid1 or 'unknown'}, not systemd, and the spec says "
                         "`service: {manager: systemd}`",
                         fix="set `service: {manager: process}` in the spec for hosts "
                         "without systemd (etcd then runs as a detached process), or boot "
                         "the host with systemd")
        return Check(member, "init", Verdict.OK, f"PID 1 is {pid1}; etcd runs as systemd")


class DetachedProcess:
    """etcd as a process of its own session (hosts without systemd: containers, the SSH
    test hosts), found again through its pidfile; nothing to write, enable or disable."""

    name = "process"

    def __init__(self, place: Place) -> None:
        self.place = place
        self.pidfile = render.on_host(place.member, spec.PIDFILE)

    def service(self) -> Service:
        return RemoteProcessService(self.place.host, self.pidfile, self.place.paths.log,
                                    self.place.spec.service.user)

    def files(self) -> list[DesiredFile]:
        return []

    def teardown(self) -> list[PurePath]:
        return [self.pidfile]

    def host_check(self, pid1: str) -> Check:
        return Check(self.place.member.name, "init", Verdict.OK,
                     f"PID 1 is {pid1 or 'unknown'}; etcd runs as a detached process")


InitSystemKind = Callable[[Place], InitSystem]

# By the name `service.manager` gives.
INIT_SYSTEMS: dict[str, InitSystemKind] = {
    Systemd.name: Systemd,
    DetachedProcess.name: DetachedProcess,
}


def kind(name: str) -> InitSystemKind:
    """The init system a spec's `service.manager` names. The spec checks only the name's
    form: which init systems exist is known here, not to the pure spec module."""
    found = INIT_SYSTEMS.get(name)
    if found is None:
        raise SpecError(
            f"service.manager: dcsctl knows no init system called {name!r}",
            fix=f"set service.manager to one of {', '.join(sorted(INIT_SYSTEMS))}",
        )
    return found
