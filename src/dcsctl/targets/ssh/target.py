"""SSH targets: each member on its own host, reached over SSH, in the guide's places
(/etc/dcs, /var/lib/etcd), run by systemd or, on hosts without it, as a plain process.

`ssh_target` builds the parts; they share one `SshHosts` (per host and run: one SSH
connection, one init system) and the etcd part's reading of what each host has installed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath

from dcsctl import render, spec
from dcsctl.errors import DcsctlError, EnvironmentProblem
from dcsctl.etcd.versions import Version
from dcsctl.hosts.ssh import Destination, SshHost, SshOptions, control_dir
from dcsctl.services.protocol import Service
from dcsctl.spec import ClusterSpec, InstallMethod
from dcsctl.state import PRIVATE, PUBLIC, ClusterDir
from dcsctl.targets import data_dir
from dcsctl.targets.protocol import (
    Check,
    HostPlan,
    Installed,
    PlannedInstall,
    PreflightReport,
    SameVersion,
    Target,
    Written,
)
from dcsctl.targets.ssh import checks, files, init_systems, install
from dcsctl.targets.ssh.init_systems import InitSystem
from dcsctl.targets.ssh.install import InstallState
from dcsctl.targets.ssh.place import Place
from dcsctl.workflow import in_parallel

# Before apt has installed etcd its version is unknown; Debian packages the 3.5 line.
APT_LINE_GUESS = Version(3, 5, 0)


def ssh_target(cluster_spec: ClusterSpec, directory: ClusterDir, cache: Path,
               environ: Mapping[str, str]) -> Target:
    hosts = SshHosts(cluster_spec, directory)
    etcd = SshEtcd(cluster_spec, hosts, cache, environ)
    return Target(placement=hosts, files=SshFiles(hosts), etcd=etcd,
                  checks=SshChecks(cluster_spec, hosts, etcd),
                  probes_peer_port=False,  # this machine's address is in no member certificate
                  remote=SshRemote(cluster_spec, hosts))


class SshHosts:
    """Every member on its own host; per host and run one shared SSH connection and one
    init system (the spec's `service.manager`), built when first needed."""

    def __init__(self, cluster_spec: ClusterSpec, directory: ClusterDir) -> None:
        self.spec = cluster_spec
        self.dir = directory
        # an init system dcsctl does not know stops every command here, before any host
        self._init_kind = init_systems.kind(cluster_spec.service.manager)
        self._hosts: dict[str, SshHost] = {}
        self._init_systems: dict[str, InitSystem] = {}

    def host(self, member: str) -> SshHost:
        if member not in self._hosts:
            found = self.spec.member(member)
            settings = self.spec.ssh
            options = SshOptions(
                user=settings.user, port=settings.port, identity_file=settings.identity_file,
                known_hosts_file=settings.known_hosts_file, config_file=settings.config_file,
                strict_host_key_checking=settings.strict_host_key_checking,
                connect_timeout_s=settings.connect_timeout_s,
            )
            destination = Destination.parse(found.ssh or str(found.address))
            self._hosts[member] = SshHost(member, destination, options, control_dir(),
                                          sudo=settings.sudo)
        return self._hosts[member]

    def layout(self, member: str) -> render.MemberLayout:
        return render.remote_layout(self.spec, self.spec.member(member))

    def paths(self, member: str) -> render.HostPaths:
        return render.HostPaths.of(self.spec, self.spec.member(member))

    def place(self, member: str) -> Place:
        return Place(self.spec, self.spec.member(member), self.host(member),
                     self.layout(member), self.paths(member), self.dir.layout(member))

    def init_system(self, member: str) -> InitSystem:
        if member not in self._init_systems:
            self._init_systems[member] = self._init_kind(self.place(member))
        return self._init_systems[member]

    def service(self, member: str) -> Service:
        return self.init_system(member).service()

    def close(self) -> None:
        for host in self._hosts.values():
            host.close()
        self._hosts.clear()
        self._init_systems.clear()  # each holds its host's connection


class SshEtcd:
    """etcd installed on each host: Debian's packages, a checked release, or what is there."""

    def __init__(self, cluster_spec: ClusterSpec, hosts: SshHosts, cache: Path,
                 environ: Mapping[str, str]) -> None:
        self.spec = cluster_spec
        self._hosts = hosts
        self._cache = cache  # release tarballs on the control machine
        self._environ = environ
        self._states: dict[str, InstallState] = {}

    def state(self, member: str) -> InstallState:
        """What the host has installed, read once per run; `install`, the one thing here
        that changes it, drops the reading (read again when next asked)."""
        if member not in self._states:
            self._states[member] = install.install_state(self._hosts.place(member))
        return self._states[member]

    def wanted(self) -> Version | None:
        return install.wanted_version(self.spec)

    def installed(self, member: str) -> Version | None:
        return self.state(member).version

    def version(self, member: str) -> Version:
        """What the host's etcd says: the install state's (the same `etcd --version`),
        asked again only to name what is wrong."""
        if (known := self.state(member).version) is not None:
            return known
        etcd = self._hosts.paths(member).etcd
        result = self._hosts.host(member).run([str(etcd), "--version"])
        try:
            return Version.parse(result.stdout.partition("\n")[0])
        except ValueError as exc:
            raise EnvironmentProblem(
                f"{member}: no working etcd at {etcd} ({result.stderr.strip()[-200:]})",
                fix="run `dcsctl up`: its install phase puts etcd there",
            ) from exc

    def planned(self, member: str) -> PlannedInstall:
        """The etcd `up` would install (rendered for before it is there), or the one present."""
        present = self.state(member).version
        wanted = self.wanted()
        method = self.spec.install.method
        if present is None or (method is InstallMethod.RELEASE and present != wanted):
            note = (f"+ install etcd via {method}" + (f" ({wanted})" if wanted else "")
                    + (f", replacing {present}" if present else ""))
        else:
            note = f"= etcd {present} present"
        return PlannedInstall(wanted or present or APT_LINE_GUESS, note,
                              present=present is not None)

    def executable(self, member: str) -> PurePath:
        return self._hosts.paths(member).etcd

    def running_executable(self, member: str) -> PurePath:
        return self._hosts.paths(member).etcd

    def prepare_install(self) -> None:
        if self.spec.install.method is InstallMethod.RELEASE:
            # fetched and checked once per architecture, before any member stops
            machines = {self.state(m.name).machine for m in self.spec.members}
            for machine in sorted(machines):
                install.release_tarball(self.spec.install, machine, self._environ,
                                        self._cache)

    def install(self, member: str) -> Installed:
        """What it installed is in its answer (`Installed.version`), not left for a later
        call: the reading it changed is dropped."""
        done = install.ensure_installed(self._hosts.place(member), self._cache,
                                       self._environ, self.state(member))
        self._states.pop(member, None)
        return done

    def with_version(self, given: ClusterSpec, wanted: Version, bin_dir: Path | None,
                     same: SameVersion) -> ClusterSpec:
        """An SSH cluster changes version through its spec: install.method release naming
        the new tarball (each host gets it just before its member restarts)."""
        settings = given.install
        if settings.method is not InstallMethod.RELEASE or not same(
                install.release_version(settings)):
            raise DcsctlError(
                f"the spec does not name etcd {wanted}'s release",
                fix=f"set install: {{method: release, version: {wanted}}} in the spec and pass "
                "it with -f",
            )
        return given


class SshChecks:
    scope = "SSH, sudo, init system, clock, free space"

    def __init__(self, cluster_spec: ClusterSpec, hosts: SshHosts, etcd: SshEtcd) -> None:
        self.spec = cluster_spec
        self._hosts = hosts
        self._etcd = etcd

    def preflight(self, members: Sequence[spec.Member], *, thorough: bool) -> PreflightReport:
        def one(member: spec.Member) -> list[Check]:
            place = self._hosts.place(member.name)
            host = self._hosts.host(member.name)
            init_system = self._hosts.init_system(member.name)
            if not thorough:
                return checks.reach(place, host, init_system)
            return checks.host_checks(place, host, init_system,
                                      lambda: self._etcd.state(member.name))

        found = [c for per_host in in_parallel(members, one) for c in per_host]
        return PreflightReport(tuple(found), f"{len(members)} hosts reachable, root via "
                               + ("sudo" if self.spec.ssh.sudo else "login"))


class SshFiles:
    def __init__(self, hosts: SshHosts) -> None:
        self._hosts = hosts

    def plan(self, member: str, settings: bytes, reissued: Sequence[PurePath],
             etcd: PlannedInstall) -> HostPlan:
        place, init_system = self._hosts.place(member), self._hosts.init_system(member)
        wanted = files.desired_files(place, init_system, settings)
        changes = files.planned_files(place, wanted, reissued)
        active = etcd.present and init_system.service().is_active()
        read_at_start = {str(f.path) for f in wanted if f.read_at_start}
        reconfigured = any(f.action == "update" and f.path in read_at_start for f in changes)
        if not active:
            service_note = "+ start etcd"
        elif reconfigured:
            service_note = "~ restart etcd (configuration changed)"
        else:
            service_note = "= etcd running"
        return HostPlan(member, str(self._hosts.host(member).destination), etcd.note,
                        tuple(changes), service_note)

    def write_member_files(self, member: str, settings: bytes, *,
                           founding_token: str | None) -> Written:
        return files.push(self._hosts.place(member), self._hosts.init_system(member), settings,
                          founding_token=founding_token)

    def write_config(self, member: str, settings: bytes) -> bool:
        host = self._hosts.host(member)
        changed = host.write(self._hosts.layout(member).config, settings, PUBLIC, "root:root")
        # What the init system keeps on the host may name the binary (a unit): a version
        # change that moves it (install: apt -> release) must start the new one.
        for needed in self._hosts.init_system(member).files():
            if needed.content is not None:
                changed = host.write(needed.path, needed.content, needed.mode,
                                     needed.owner) or changed
        return changed

    def holds_data(self, member: str) -> bool:
        return data_dir.holds_data(self._hosts.host(member), self._hosts.layout(member).data_dir)

    def wipe_data_dir(self, member: str) -> None:
        data_dir.wipe(self._hosts.host(member), self._hosts.layout(member).data_dir,
                      self._hosts.place(member).owner)

    def restore_data_dir(self, member: str, snapshot: Path, options: Sequence[str]) -> None:
        """The snapshot is pushed beside the data dir first, and removed after."""
        host, layout = self._hosts.host(member), self._hosts.layout(member)
        pushed = layout.data_dir.parent / ".dcsctl-restore.db"
        host.write(pushed, snapshot.read_bytes(), PRIVATE, "root:root")
        data_dir.restore(host, member,
                         etcdutl=self._hosts.paths(member).etcd.parent / "etcdutl",
                         snapshot=pushed, data_dir=layout.data_dir,
                         owner=self._hosts.place(member).owner, options=options,
                         drop_snapshot=True)

    def drop_pre_restore(self, member: str) -> bool:
        return data_dir.drop_pre_restore(self._hosts.host(member),
                                         self._hosts.layout(member).data_dir)


class SshRemote:
    """The hosts' own copies of what dcsctl issued, and the connections to them."""

    def __init__(self, cluster_spec: ClusterSpec, hosts: SshHosts) -> None:
        self.spec = cluster_spec
        self._hosts = hosts

    def sync_tls(self, member: str) -> list[str]:
        return files.sync_tls(self._hosts.place(member))

    def remove(self, member: str) -> None:
        files.remove(self._hosts.place(member), self._hosts.init_system(member))

    def left_behind(self) -> str:
        """What dcsctl installed but did not create for this cluster alone (other software
        may use the package and the user)."""
        kept = [f"the `{self.spec.service.user}` user"]
        if self.spec.install.method is InstallMethod.APT:
            kept.insert(0, "Debian's etcd-server and etcd-client packages")
        elif self.spec.install.method is InstallMethod.RELEASE:
            kept.insert(0, f"the etcd binaries in {self.spec.remote_bin_dir()}")
        return "left on each host: " + " and ".join(kept)

    def close(self) -> None:
        self._hosts.close()
