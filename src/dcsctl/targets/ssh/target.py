"""`SshTarget`: each member on its own host, reached over SSH, in the guide's places
(/etc/dcs, /var/lib/etcd), run by systemd or, on hosts without it, as a plain process."""

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
    PreflightReport,
    SameVersion,
    Written,
)
from dcsctl.targets.ssh import checks, files, install
from dcsctl.targets.ssh.init_systems import init_system
from dcsctl.targets.ssh.install import InstallState
from dcsctl.targets.ssh.place import Place
from dcsctl.workflow import in_parallel

# Before apt has installed etcd its version is unknown; Debian packages the 3.5 line.
APT_LINE_GUESS = Version(3, 5, 0)


class SshTarget:
    """Every member on its own host; one shared SSH connection per host and run."""

    preflight_scope = "SSH, sudo, init system, clock, free space"
    probes_peer_port = False  # this machine's address is in no member certificate

    def __init__(self, cluster_spec: ClusterSpec, directory: ClusterDir, cache: Path,
                 environ: Mapping[str, str]) -> None:
        self.spec = cluster_spec
        self.dir = directory
        self._cache = cache  # release tarballs on the control machine
        self._environ = environ
        self._hosts: dict[str, SshHost] = {}
        self._versions: dict[str, Version] = {}
        self._states: dict[str, InstallState] = {}

    # -- where things are --
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

    def service(self, member: str) -> Service:
        return init_system(self.place(member)).service()

    # -- etcd binaries: installed on each host --
    def _state(self, member: str) -> InstallState:
        """What the host has installed, read once per run (an install updates it)."""
        if member not in self._states:
            self._states[member] = install.install_state(self.place(member))
        return self._states[member]

    def wanted_version(self) -> Version | None:
        return install.wanted_version(self.spec)

    def installed_version(self, member: str) -> Version | None:
        return self._state(member).version

    def etcd_version(self, member: str) -> Version:
        """What the host's etcd says, read once."""
        if member not in self._versions:
            etcd = self.paths(member).etcd
            result = self.host(member).run([str(etcd), "--version"])
            try:
                self._versions[member] = Version.parse(result.stdout.partition("\n")[0])
            except ValueError as exc:
                raise EnvironmentProblem(
                    f"{member}: no working etcd at {etcd} ({result.stderr.strip()[-200:]})",
                    fix="run `dcsctl up`: its install phase puts etcd there",
                ) from exc
        return self._versions[member]

    def etcd_executable(self, member: str) -> PurePath:
        return self.paths(member).etcd

    def running_executable(self, member: str) -> PurePath:
        return self.paths(member).etcd

    def prepare_install(self) -> None:
        if self.spec.install.method is InstallMethod.RELEASE:
            # fetched and checked once per architecture, before any member stops
            machines = {self._state(m.name).machine for m in self.spec.members}
            for machine in sorted(machines):
                install.release_tarball(self.spec.install, machine, self._environ,
                                        self._cache)

    def install(self, member: str) -> Installed:
        done, state = install.ensure_installed(self.place(member), self._cache,
                                               self._environ, self._state(member))
        self._states[member] = state
        self._versions[member] = done.version
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

    # -- checks --
    def preflight(self, members: Sequence[spec.Member], *, thorough: bool) -> PreflightReport:
        def one(member: spec.Member) -> list[Check]:
            place = self.place(member.name)
            if not thorough:
                return checks.reach(place, self.host(member.name))
            return checks.host_checks(place, self.host(member.name),
                                      self.service(member.name),
                                      lambda: self._state(member.name))

        found = [c for per_host in in_parallel(members, one) for c in per_host]
        return PreflightReport(tuple(found), f"{len(members)} hosts reachable, root via "
                               + ("sudo" if self.spec.ssh.sudo else "login"))

    def plan(self, member: str, settings: bytes, reissued: Sequence[PurePath]) -> HostPlan:
        place = self.place(member)
        version = self._state(member).version
        wanted = self.wanted_version()
        method = self.spec.install.method
        if version is None or (method is InstallMethod.RELEASE and version != wanted):
            installing = (f"+ install etcd via {method}" + (f" ({wanted})" if wanted else "")
                          + (f", replacing {version}" if version else ""))
        else:
            installing = f"= etcd {version} present"
        changes = files.planned_files(place, settings, reissued)
        active = version is not None and self.service(member).is_active()
        # etcd reads its settings and its unit at start-up only (certificates it re-reads).
        read_at_start = {str(place.layout.config), str(place.paths.unit)}
        reconfigured = any(f.action == "update" and f.path in read_at_start for f in changes)
        if not active:
            service_note = "+ start etcd"
        elif reconfigured:
            service_note = "~ restart etcd (configuration changed)"
        else:
            service_note = "= etcd running"
        return HostPlan(member, str(self.host(member).destination), installing, tuple(changes),
                        service_note)

    def planned_version(self, member: str) -> Version:
        """The version a plan renders the configuration for: the one `up` would install."""
        return self.wanted_version() or self._state(member).version or APT_LINE_GUESS

    # -- files and data --
    def write_member_files(self, member: str, settings: bytes, *,
                           founding_token: str | None) -> Written:
        return files.push(self.place(member), settings, founding_token=founding_token)

    def write_config(self, member: str, settings: bytes) -> bool:
        host = self.host(member)
        changed = host.write(self.layout(member).config, settings, PUBLIC, "root:root")
        # What the init system keeps on the host may name the binary (a unit): a version
        # change that moves it (install: apt -> release) must start the new one.
        for needed in init_system(self.place(member)).files():
            if needed.content is not None:
                changed = host.write(needed.path, needed.content, needed.mode,
                                     needed.owner) or changed
        return changed

    def sync_tls(self, member: str) -> list[str]:
        return files.sync_tls(self.place(member))

    def holds_data(self, member: str) -> bool:
        return data_dir.holds_data(self.host(member), self.layout(member).data_dir)

    def wipe_data_dir(self, member: str) -> None:
        data_dir.wipe(self.host(member), self.layout(member).data_dir,
                      self.place(member).owner)

    def restore_data_dir(self, member: str, snapshot: Path, options: Sequence[str]) -> None:
        """The snapshot is pushed beside the data dir first, and removed after."""
        host, layout = self.host(member), self.layout(member)
        pushed = layout.data_dir.parent / ".dcsctl-restore.db"
        host.write(pushed, snapshot.read_bytes(), PRIVATE, "root:root")
        data_dir.restore(host, member, etcdutl=self.paths(member).etcd.parent / "etcdutl",
                         snapshot=pushed, data_dir=layout.data_dir,
                         owner=self.place(member).owner, options=options, drop_snapshot=True)

    def drop_pre_restore(self, member: str) -> bool:
        return data_dir.drop_pre_restore(self.host(member), self.layout(member).data_dir)

    def remove(self, member: str) -> None:
        files.remove(self.place(member))

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
        for host in self._hosts.values():
            host.close()
        self._hosts.clear()
