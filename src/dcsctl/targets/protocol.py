"""What a cluster needs from the place its members run, whatever that place is.

A `Target` is a few small parts, one per concern, which `targets.factory.target_for`
builds for the kind of place a spec names: where a member lives and what runs it
(`Placement`: three methods every target has), its files and data dir (`MemberFiles`),
its etcd binaries and versions (`EtcdBinaries`), the checks before anything is written
(`HostChecks`), and — only where members run on machines of their own — the copies and
connections those machines hold (`RemoteHosts`, absent for the lab: an optional part,
never a method that does nothing). `ops/` speaks only to these protocols.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Protocol

from dcsctl import render
from dcsctl.errors import EnvironmentProblem
from dcsctl.etcd.versions import Version
from dcsctl.hosts.protocol import Host
from dcsctl.services.protocol import Service
from dcsctl.spec import ClusterSpec, Member


class Verdict(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    member: str
    name: str
    verdict: Verdict
    detail: str
    fix: str = ""  # what to do about a FAIL, for the error `up` raises


@dataclass(frozen=True)
class PreflightReport:
    checks: tuple[Check, ...]
    summary: str = ""  # one line for `up`'s preflight phase

    @property
    def failed(self) -> bool:
        return any(c.verdict is Verdict.FAIL for c in self.checks)

    def problem(self) -> EnvironmentProblem | None:
        """Every failed check in one error, each naming its member; the first fix given."""
        failed = [c for c in self.checks if c.verdict is Verdict.FAIL]
        if not failed:
            return None
        return EnvironmentProblem(
            "; ".join(f"{c.member} {c.name}: {c.detail}" for c in failed),
            fix=next((c.fix for c in failed if c.fix), "see `dcsctl preflight`"))


@dataclass(frozen=True)
class Installed:
    """etcd on one member's host after `install`."""

    note: str  # what was done ("" when nothing)
    version: Version
    replaced: bool  # etcd's binary changed: a running member must restart to use it
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Written:
    """A member's files brought to the spec."""

    changed: tuple[str, ...]  # the paths written
    previous_config: bytes | None  # the configuration replaced, when it changed
    restart: bool = False  # something only read at start-up changed besides the config


@dataclass(frozen=True)
class FileChange:
    path: str
    action: str  # create | update | unchanged
    diff: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostPlan:
    member: str
    destination: str
    install: str
    files: tuple[FileChange, ...]
    service: str

    @property
    def changes(self) -> bool:
        return (not self.install.startswith("=") or not self.service.startswith("=")
                or any(f.action != "unchanged" for f in self.files))


@dataclass(frozen=True)
class PlannedInstall:
    """What `up` would do about etcd on one member's host, read before anything changes."""

    version: Version  # the etcd the member's configuration is to be rendered for
    note: str  # the plan's line: "= etcd 3.5.30 present", "+ install etcd via release (…)"
    present: bool  # an etcd is there now (a running member may then be restarted, not started)


# Another etcd than the spec's: does a found version match the one asked for?
SameVersion = Callable[[Version], bool]


class Placement(Protocol):
    """Where a member lives and what runs it: the three things every target has."""

    def layout(self, member: str) -> render.MemberLayout:
        """Where the member's configuration, certificates and data live on its host."""
        ...

    def host(self, member: str) -> Host:
        """The machine that runs the member."""
        ...

    def service(self, member: str) -> Service:
        """What starts and stops the member's etcd."""
        ...


class MemberFiles(Protocol):
    """A member's files and data dir on its host."""

    def plan(self, member: str, settings: bytes, reissued: Sequence[PurePath],
             etcd: PlannedInstall) -> HostPlan:
        """What bringing the member's host to the spec would change; reads only.
        `settings`: its configuration as `up` would write it (rendered for `etcd.version`);
        `reissued`: files the pki phase would issue anew (their content is not known yet)."""
        ...

    def write_member_files(self, member: str, settings: bytes, *,
                           founding_token: str | None) -> Written:
        """Configuration, certificates (as issued on the control machine) and whatever
        else the host needs. `founding_token`: the cluster is not bootstrapped yet, so a
        data dir another cluster created must be refused."""
        ...

    def write_config(self, member: str, settings: bytes) -> bool:
        """Only the configuration (bootstrap, a version change); True if it changed."""
        ...

    def holds_data(self, member: str) -> bool:
        ...

    def wipe_data_dir(self, member: str) -> None:
        """An empty data dir: the member joins afresh."""
        ...

    def restore_data_dir(self, member: str, snapshot: Path, options: Sequence[str]) -> None:
        """Rebuild the data dir from a snapshot on the control machine; the old one is kept
        aside until `drop_pre_restore`."""
        ...

    def drop_pre_restore(self, member: str) -> bool:
        """Remove the data dir a restore kept aside; True if there was one."""
        ...


class EtcdBinaries(Protocol):
    """Which etcd a member runs, and putting another one there. Every answer is what the
    host has when asked (a part may read a host once per run, but `install` drops what it
    read: no call leaves a version behind for a later one). A caller that needs the
    version an install produced takes it from `Installed` and passes it on (`up` hands it
    from its install phase to config and bootstrap)."""

    def wanted(self) -> Version | None:
        """The etcd version the spec calls for, if it names one."""
        ...

    def installed(self, member: str) -> Version | None:
        """The etcd the member runs or would start now, before any install: None when
        a (re)start would take the spec's anyway."""
        ...

    def version(self, member: str) -> Version:
        """The etcd the member's host has now: what its configuration is rendered for."""
        ...

    def planned(self, member: str) -> PlannedInstall:
        """What `up` would install, and the version it would render the configuration
        for, before anything is installed (`up --plan`); reads only."""
        ...

    def executable(self, member: str) -> PurePath:
        """The etcd binary a start of the member runs."""
        ...

    def running_executable(self, member: str) -> PurePath:
        """The etcd binary the member runs now (the one to go back to)."""
        ...

    def prepare_install(self) -> None:
        """Fetch and check what every install needs, once, before any host changes."""
        ...

    def install(self, member: str) -> Installed:
        """etcd (per the spec's install method) and its service user on the host; the
        version it reports is the one to render the member's configuration for."""
        ...

    def with_version(self, given: ClusterSpec, wanted: Version, bin_dir: Path | None,
                     same: SameVersion) -> ClusterSpec:
        """The spec that runs etcd `wanted` (`given`: the one the user passed, when it
        names the new release; `bin_dir`: a lab folder holding it)."""
        ...


class HostChecks(Protocol):
    """Can members run here?"""

    scope: str  # what `up`'s preflight phase looks at, in a few words

    def preflight(self, members: Sequence[Member], *, thorough: bool) -> PreflightReport:
        """`thorough`: `dcsctl preflight`'s full list; else what `up` must know before it
        writes anything."""
        ...


class RemoteHosts(Protocol):
    """Members on machines of their own, which hold their own copies of what dcsctl
    issued and are reached over connections. A target whose members read the control
    machine's files (the lab) has none of this."""

    def sync_tls(self, member: str) -> list[str]:
        """The member's certificates and keys as issued on the control machine."""
        ...

    def remove(self, member: str) -> None:
        """Take back everything dcsctl put there for the member (keys first)."""
        ...

    def left_behind(self) -> str:
        """What `destroy` leaves in place on purpose, in a sentence."""
        ...

    def close(self) -> None:
        """End the connections to the hosts."""
        ...


@dataclass(frozen=True)
class Target:
    """The place a cluster's members run, seen from the control machine: its parts."""

    placement: Placement
    files: MemberFiles
    etcd: EtcdBinaries
    checks: HostChecks
    # Can this machine ask a member's peer port, with that member's own certificate, whether
    # it serves? Only where the members run here (etcd checks the peer certificate's
    # addresses against the connection's source): a first start can then be staggered.
    probes_peer_port: bool
    remote: RemoteHosts | None = None  # None: the members' files are the control machine's

    def close(self) -> None:
        if self.remote is not None:
            self.remote.close()
