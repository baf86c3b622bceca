"""Lab members: etcd processes on this machine, each on its own loopback address, their
files in the control machine's state dir (the copy etcd reads is the one dcsctl issued).
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
    PreflightReport,
    SameVersion,
    Verdict,
    Written,
)

PORTS_FIX = "stop that process, or give the members other addresses or ports in the spec"


class LabTarget:
    """Every member a detached etcd process of this machine, found by its pidfile."""

    preflight_scope = "etcd binaries, state dir, ports"
    probes_peer_port = True  # the members' addresses are this machine's

    def __init__(self, cluster_spec: ClusterSpec, directory: ClusterDir,
                 binaries: Callable[[], Binaries], environ: Mapping[str, str]) -> None:
        self.spec = cluster_spec
        self.dir = directory
        self._binaries = binaries  # found once per run, by whoever owns the cache
        self._environ = environ
        self._host = LocalHost()

    # -- where things are --
    def layout(self, member: str) -> render.MemberLayout:
        return self.dir.layout(member)

    def host(self, member: str) -> LocalHost:
        return self._host

    def service(self, member: str) -> ProcessService:
        return self.process(member)

    def process(self, member: str) -> ProcessService:
        """A member's local process (fault tests signal it directly)."""
        return ProcessService(self.dir.pidfile(member), self.dir.logfile(member))

    # -- etcd binaries: whatever etcd the spec's bin_dir (or PATH) holds --
    def wanted_version(self) -> Version | None:
        return self._binaries().version

    def installed_version(self, member: str) -> Version | None:
        """A running member runs the binary it was started with; a stopped one simply
        starts on the spec's."""
        process = self.process(member)
        record = process.record()
        if record is None or not process.is_active():
            return None
        found = self._binaries()
        if Path(record.executable) == found.etcd:
            return found.version
        return binaries_module.version_of(Path(record.executable))

    def etcd_version(self, member: str) -> Version:
        return self._binaries().version

    def planned_version(self, member: str) -> Version:
        return self.etcd_version(member)

    def etcd_executable(self, member: str) -> PurePath:
        return self._binaries().etcd

    def running_executable(self, member: str) -> PurePath:
        record = self.process(member).record()
        return PurePath(record.executable) if record else self._binaries().etcd

    def etcdutl(self) -> PurePath:
        found = self._binaries()
        if found.etcdutl is None:
            raise EnvironmentProblem(f"etcdutl is not next to {found.etcd}",
                                     fix="install etcd's etcdutl beside etcd")
        return found.etcdutl

    def prepare_install(self) -> None:
        self._binaries()

    def install(self, member: str) -> Installed:
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

    # -- checks --
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
        if self.service(member.name).is_active():
            return Check(member.name, "ports", Verdict.OK, "held by this cluster's etcd")
        wanted = (self.spec.client_port(member), self.spec.peer_port(member))
        busy = [f"{member.address}:{port} ({member.name}) is held by {holder}"
                for port in wanted
                if (holder := self._host.port_busy(str(member.address), port))]
        if busy:
            return Check(member.name, "ports", Verdict.FAIL,
                         "ports needed by the cluster are in use: " + "; ".join(busy),
                         PORTS_FIX)
        return Check(member.name, "ports", Verdict.OK,
                     ", ".join(f"{member.address}:{p}" for p in wanted) + " free")

    def plan(self, member: str, settings: bytes, reissued: Sequence[PurePath]) -> HostPlan:
        found = self._binaries()
        config = self.layout(member).config
        current = self._host.read(config)
        action = "create" if current is None else (
            "unchanged" if current == settings else "update")
        active = self.service(member).is_active()
        service = ("+ start etcd" if not active else "~ restart etcd (configuration changed)"
                   if action == "update" else "= etcd running")
        return HostPlan(member, "this machine", f"= etcd {found.version} at {found.bin_dir}",
                        (FileChange(str(config), action),), service)

    # -- files and data: the state dir is the members' disk --
    def write_member_files(self, member: str, settings: bytes, *,
                           founding_token: str | None) -> Written:
        path = self.layout(member).config
        previous = self._host.read(path)
        changed = (str(path),) if self._host.write(path, settings, PUBLIC) else ()
        return Written(changed, previous)

    def write_config(self, member: str, settings: bytes) -> bool:
        return self._host.write(self.layout(member).config, settings, PUBLIC)

    def sync_tls(self, member: str) -> list[str]:
        return []  # the control machine's copy is the one etcd reads

    def holds_data(self, member: str) -> bool:
        return Path(self.layout(member).data_dir).exists()

    def wipe_data_dir(self, member: str) -> None:
        data_dir.wipe(self._host, self.layout(member).data_dir, _me())

    def restore_data_dir(self, member: str, snapshot: Path, options: Sequence[str]) -> None:
        data_dir.restore(self._host, member, etcdutl=self.etcdutl(), snapshot=snapshot,
                         data_dir=self.layout(member).data_dir, owner=_me(), options=options,
                         drop_snapshot=False)

    def drop_pre_restore(self, member: str) -> bool:
        return data_dir.drop_pre_restore(self._host, self.layout(member).data_dir)

    def remove(self, member: str) -> None:
        """Everything of a lab member lives in the state dir, which its caller removes."""

    def left_behind(self) -> str:
        return ""

    def close(self) -> None:
        pass


def _me() -> str:
    return f"{os.getuid()}:{os.getgid()}"
