"""Lab members: etcd processes on this machine, each on its own loopback address, their
files in the control machine's state dir (the copy etcd reads is the one dcsctl issued).

The lab has no `RemoteHosts` part: nothing is copied to a member's host (the state dir is
its disk), nothing there outlives the state dir, and no connection is held.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePath

from dcsctl import render, spec
from dcsctl.errors import DcsctlError, EnvironmentProblem
from dcsctl.etcd import binaries as binaries_module
from dcsctl.etcd.binaries import Binaries
from dcsctl.etcd.versions import Version, advisories, upgrade_advice
from dcsctl.hosts.local import LocalHost
from dcsctl.services.process import ProcessService
from dcsctl.spec import ClusterSpec
from dcsctl.state import PUBLIC, ClusterDir
from dcsctl.targets import data_dir
from dcsctl.targets.protocol import (
    Check,
    FileChange,
    HostPlan,
    Installed,
    PlannedInstall,
    PreflightReport,
    SameVersion,
    Target,
    Verdict,
    Written,
)

PORTS_FIX = "stop that process, or give the members other addresses or ports in the spec"

# The etcd found on this machine, found once per run by whoever owns the cache.
FindBinaries = Callable[[], Binaries]


def lab_target(cluster_spec: ClusterSpec, directory: ClusterDir, binaries: FindBinaries,
               environ: Mapping[str, str]) -> Target:
    members = LabMembers(directory)
    etcd = LabEtcd(cluster_spec, members, binaries, environ)
    return Target(placement=members, files=LabFiles(members, etcd),
                  etcd=etcd, checks=LabChecks(cluster_spec, members, binaries),
                  probes_peer_port=True)  # the members' addresses are this machine's


class LabMembers:
    """Every member a detached etcd process of this machine, found by its pidfile."""

    def __init__(self, directory: ClusterDir) -> None:
        self.dir = directory
        self.local = LocalHost()

    def layout(self, member: str) -> render.MemberLayout:
        return self.dir.layout(member)

    def host(self, member: str) -> LocalHost:
        return self.local

    def service(self, member: str) -> ProcessService:
        return self.process(member)

    def process(self, member: str) -> ProcessService:
        """A member's local process (fault tests signal it directly)."""
        return ProcessService(self.dir.pidfile(member), self.dir.logfile(member))


class LabEtcd:
    """Whatever etcd the spec's bin_dir (or PATH) holds: nothing to install."""

    def __init__(self, cluster_spec: ClusterSpec, members: LabMembers, binaries: FindBinaries,
                 environ: Mapping[str, str]) -> None:
        self.spec = cluster_spec
        self._members = members
        self._binaries = binaries
        self._environ = environ

    def wanted(self) -> Version | None:
        return self._binaries().version

    def installed(self, member: str) -> Version | None:
        """A running member runs the binary it was started with; a stopped one simply
        starts on the spec's."""
        process = self._members.process(member)
        record = process.record()
        if record is None or not process.is_active():
            return None
        found = self._binaries()
        if Path(record.executable) == found.etcd:
            return found.version
        return binaries_module.version_of(Path(record.executable))

    def version(self, member: str) -> Version:
        return self._binaries().version

    def planned(self, member: str) -> PlannedInstall:
        found = self._binaries()
        return PlannedInstall(found.version, f"= etcd {found.version} at {found.bin_dir}",
                              present=True)

    def executable(self, member: str) -> PurePath:
        return self._binaries().etcd

    def running_executable(self, member: str) -> PurePath:
        record = self._members.process(member).record()
        return PurePath(record.executable) if record else self._binaries().etcd

    def etcdutl(self) -> PurePath:
        found = self._binaries()
        if found.etcdutl is None:
            raise EnvironmentProblem(f"etcdutl is not next to {found.etcd}",
                                     fix="install etcd's etcdutl beside etcd")
        return found.etcdutl

    def prepare_install(self) -> None:
        self._binaries()  # a missing etcd stops the run here, before any member changes

    def install(self, member: str) -> Installed:
        """Nothing to put anywhere: the version found, and its advisories as warnings."""
        found = self._binaries()
        return Installed("", found.version, replaced=False, warnings=found.warnings)

    def with_version(self, given: ClusterSpec, wanted: Version, bin_dir: Path | None,
                     same: SameVersion) -> ClusterSpec:
        """This cluster's spec with etcd.bin_dir pointing at the new binaries, which must
        be `same` as what was asked for."""
        directory = bin_dir or (Path(self.spec.etcd.bin_dir) if self.spec.etcd.bin_dir
                                else None)
        if directory is None:
            raise DcsctlError(f"where is etcd {wanted}?",
                              fix=f"pass --bin-dir DIR (a folder with etcd {wanted}'s etcd, "
                              "etcdctl and etcdutl)")
        found = binaries_module.find(str(directory), self._environ)
        if not same(found.version):
            raise EnvironmentProblem(f"{found.etcd} is etcd {found.version}, not {wanted}",
                                     fix=f"point --bin-dir at an etcd {wanted} install")
        raw = spec.digest_source(self.spec)
        raw.setdefault("etcd", {})["bin_dir"] = str(directory)
        # which advisories the user accepts is the given spec's say, not the saved one's
        raw["etcd"]["accept_risks"] = list(given.etcd.accept_risks)
        return spec.from_mapping(raw, source="the changed spec")


class LabChecks:
    scope = "etcd binaries, state dir, ports"

    def __init__(self, cluster_spec: ClusterSpec, members: LabMembers,
                 binaries: FindBinaries) -> None:
        self.spec = cluster_spec
        self._members = members
        self._binaries = binaries

    def preflight(self, members: Sequence[spec.Member], *, thorough: bool) -> PreflightReport:
        found = self._binaries()
        problems = advisories(found.version)
        etcd = (Check("-", "etcd", Verdict.WARN,
                      f"etcd {found.version} at {found.bin_dir} has "
                      f"{', '.join(a.ident for a in problems)}: upgrade to "
                      f"{upgrade_advice(found.version)}") if problems
                else Check("-", "etcd", Verdict.OK, f"etcd {found.version} at {found.bin_dir}"))
        checks = [etcd, *(self._ports_check(m) for m in members)]
        return PreflightReport(tuple(checks), f"etcd {found.version} at {found.bin_dir}")

    def _ports_check(self, member: spec.Member) -> Check:
        if self._members.service(member.name).is_active():
            return Check(member.name, "ports", Verdict.OK, "held by this cluster's etcd")
        wanted = (self.spec.client_port(member), self.spec.peer_port(member))
        busy = [f"{member.address}:{port} ({member.name}) is held by {holder}"
                for port in wanted
                if (holder := self._members.local.port_busy(str(member.address), port))]
        if busy:
            return Check(member.name, "ports", Verdict.FAIL,
                         "ports needed by the cluster are in use: " + "; ".join(busy),
                         PORTS_FIX)
        return Check(member.name, "ports", Verdict.OK,
                     ", ".join(f"{member.address}:{p}" for p in wanted) + " free")


class LabFiles:
    """The state dir is the members' disk: only the configuration is written apart from
    what the pki phase issues (the copy etcd reads is that one)."""

    def __init__(self, members: LabMembers, etcd: LabEtcd) -> None:
        self._members = members
        self._host = members.local
        self._etcd = etcd

    def plan(self, member: str, settings: bytes, reissued: Sequence[PurePath],
             etcd: PlannedInstall) -> HostPlan:
        config = self._members.layout(member).config
        current = self._host.read(config)
        action = "create" if current is None else (
            "unchanged" if current == settings else "update")
        active = self._members.service(member).is_active()
        service = ("+ start etcd" if not active else "~ restart etcd (configuration changed)"
                   if action == "update" else "= etcd running")
        return HostPlan(member, "this machine", etcd.note,
                        (FileChange(str(config), action),), service)

    def write_member_files(self, member: str, settings: bytes, *,
                           founding_token: str | None) -> Written:
        path = self._members.layout(member).config
        previous = self._host.read(path)
        changed = (str(path),) if self._host.write(path, settings, PUBLIC) else ()
        return Written(changed, previous)

    def write_config(self, member: str, settings: bytes) -> bool:
        return self._host.write(self._members.layout(member).config, settings, PUBLIC)

    def holds_data(self, member: str) -> bool:
        return Path(self._members.layout(member).data_dir).exists()

    def wipe_data_dir(self, member: str) -> None:
        data_dir.wipe(self._host, self._members.layout(member).data_dir, _me())

    def restore_data_dir(self, member: str, snapshot: Path, options: Sequence[str]) -> None:
        data_dir.restore(self._host, member, etcdutl=self._etcd.etcdutl(), snapshot=snapshot,
                         data_dir=self._members.layout(member).data_dir, owner=_me(),
                         options=options, drop_snapshot=False)

    def drop_pre_restore(self, member: str) -> bool:
        return data_dir.drop_pre_restore(self._host, self._members.layout(member).data_dir)


def _me() -> str:
    return f"{os.getuid()}:{os.getgid()}"
