"""The Context: everything a use case needs from the outside world, built once.

The CLI builds it from argv and the environment; tests build it the same way with their
own DCSCTL_HOME, so both exercise the same code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePath

from dcsctl import releases, render
from dcsctl import spec as spec_module
from dcsctl.errors import DcsctlError, EnvironmentProblem, NotFound
from dcsctl.etcd import binaries
from dcsctl.etcd.client import ClientTls, EtcdClient
from dcsctl.etcd.versions import Version
from dcsctl.hosts.local import LocalHost
from dcsctl.hosts.protocol import Host
from dcsctl.hosts.ssh import Destination, SshHost, SshOptions, control_dir
from dcsctl.services.process import ProcessService
from dcsctl.services.protocol import Service
from dcsctl.services.remote import RemoteProcessService, SystemdService
from dcsctl.spec import InstallMethod, ServiceManager, Target
from dcsctl.state import ClusterDir, default_home
from dcsctl.workflow import Progress, SilentProgress


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Context:
    environ: Mapping[str, str]
    progress: Progress = field(default_factory=SilentProgress)
    clock: Callable[[], dt.datetime] = utc_now

    @property
    def home(self) -> Path:
        return default_home(self.environ)

    def deadline(self, seconds: float) -> float:
        """Scale a timeout by DCSCTL_TIMEOUT_SCALE: one knob for slow machines."""
        try:
            scale = float(self.environ.get("DCSCTL_TIMEOUT_SCALE", "1"))
        except ValueError:
            scale = 1.0
        return seconds * max(scale, 0.1)

    clusters: list[Cluster] = field(default_factory=list)

    def cluster(self, cluster_spec: spec_module.ClusterSpec) -> Cluster:
        made = Cluster(self, cluster_spec)
        self.clusters.append(made)
        return made

    def close(self) -> None:
        """End every SSH master connection this run opened: nothing outlives dcsctl."""
        for made in self.clusters:
            made.close()

    def saved_cluster(self, name: str) -> Cluster:
        """A cluster known only by name: its spec comes from the state dir."""
        directory = ClusterDir(self.home, name)
        if not directory.exists():
            raise NotFound(
                f"no cluster named {name!r} in {self.home}",
                fix="create it with `dcsctl up` (or pass -f/--spec, or set DCSCTL_HOME)",
            )
        return self.cluster(directory.load_spec())


class Cluster:
    """One cluster as seen from the control machine: spec, state dir, processes, client."""

    def __init__(self, context: Context, cluster_spec: spec_module.ClusterSpec) -> None:
        self.context = context
        self.spec = cluster_spec
        self.dir = ClusterDir(context.home, cluster_spec.name)
        self.host = LocalHost()  # the control machine
        self._member_hosts: dict[str, SshHost] = {}
        self._versions: dict[str, Version] = {}

    @property
    def remote(self) -> bool:
        """Members are hosts reached over SSH (else: lab processes on this machine)."""
        return self.spec.target is Target.SSH

    def require_remote(self, what: str) -> None:
        if not self.remote:
            raise DcsctlError(
                f"{what} is for SSH clusters (target: ssh); this is a lab cluster",
                fix="the lab's checks run inside `dcsctl up`; pass -f with an SSH spec",
            )

    @cached_property
    def binaries(self) -> binaries.Binaries:
        """The etcd a lab cluster runs: a release tarball the spec pins (unpacked in the
        cache), else etcd.bin_dir, DCSCTL_ETCD_BIN_DIR, PATH, dcsctl's bin dir."""
        install = self.spec.install
        if install.method is InstallMethod.RELEASE and install.tarball and install.sha256:
            tarball = releases.fetch(install.tarball, install.sha256,
                                     self.context.home / ".cache" / "releases")
            found = binaries.find(str(releases.unpacked(tarball)), self.context.environ)
            named = install.version or releases.named_version(install.tarball)
            if named and Version.parse(named) != found.version:
                raise EnvironmentProblem(
                    f"{install.tarball} holds etcd {found.version}, but the spec says {named}",
                    fix="correct install.version, or point install.tarball and install.sha256 "
                    f"at etcd {named}'s release")
            return found
        return binaries.find(self.spec.etcd.bin_dir, self.context.environ)

    def host_of(self, member: str) -> Host:
        """The machine that runs `member`: this one in the lab, an SSH host otherwise."""
        if not self.remote:
            return self.host
        return self.ssh_host(member)

    def ssh_host(self, member: str) -> SshHost:
        if member not in self._member_hosts:
            found = self.spec.member(member)
            settings = self.spec.ssh
            options = SshOptions(
                user=settings.user, port=settings.port, identity_file=settings.identity_file,
                known_hosts_file=settings.known_hosts_file, config_file=settings.config_file,
                strict_host_key_checking=settings.strict_host_key_checking,
                connect_timeout_s=settings.connect_timeout_s,
            )
            destination = Destination.parse(found.ssh or str(found.address))
            self._member_hosts[member] = SshHost(
                member, destination, options, control_dir(), sudo=settings.sudo
            )
        return self._member_hosts[member]

    def layout(self, member: str) -> render.MemberLayout:
        """Where the member's configuration, certificates and data live on its host."""
        if not self.remote:
            return self.dir.layout(member)
        return render.remote_layout(self.spec, self.spec.member(member))

    def etcd_version(self, member: str) -> Version:
        """The etcd version the member runs (or would run): its configuration is rendered
        for it. Lab: the binaries found; SSH: what the host's etcd says, read once."""
        if not self.remote:
            return self.binaries.version
        if member not in self._versions:
            etcd = self.host_paths(member).etcd
            result = self.host_of(member).run([str(etcd), "--version"])
            try:
                self._versions[member] = Version.parse(result.stdout.partition("\n")[0])
            except ValueError as exc:
                raise EnvironmentProblem(
                    f"{member}: no working etcd at {etcd} ({result.stderr.strip()[-200:]})",
                    fix="run `dcsctl up`: its install phase puts etcd there",
                ) from exc
        return self._versions[member]

    def remember_version(self, member: str, version: Version) -> None:
        """What an install just put on the member's host."""
        self._versions[member] = version

    def host_paths(self, member: str) -> render.HostPaths:
        return render.HostPaths.of(self.spec, self.spec.member(member))

    def etcd_executable(self, member: str) -> PurePath:
        if not self.remote:
            return self.binaries.etcd
        return self.host_paths(member).etcd

    def running_executable(self, member: str) -> PurePath:
        """The etcd binary the member runs now (a lab member keeps the one it was started
        with, whatever the spec says since)."""
        if not self.remote:
            record = self.process(member).record()
            return PurePath(record.executable) if record else self.binaries.etcd
        return self.host_paths(member).etcd

    def service(self, member: str) -> Service:
        if not self.remote:
            return self.process(member)
        host = self.ssh_host(member)
        if self.spec.service.manager is ServiceManager.SYSTEMD:
            return SystemdService(host)
        paths = self.host_paths(member)
        return RemoteProcessService(host, paths.pidfile, paths.log, self.spec.service.user)

    def process(self, member: str) -> ProcessService:
        """A lab member's local process (upgrade and fault tests look at it directly)."""
        return ProcessService(self.dir.pidfile(member), self.dir.logfile(member))

    def close(self) -> None:
        """End the shared SSH connections."""
        for host in self._member_hosts.values():
            host.close()
        self._member_hosts.clear()

    def endpoints(self) -> list[str]:
        return [self.spec.client_url(m) for m in self.spec.members]

    def admin_tls(self) -> ClientTls:
        """TLS as root by the admin certificate's CN: no password, no token."""
        trusted, admin = self.dir.trusted_cas(), self.dir.admin()
        if trusted is None or admin is None:
            raise NotFound(
                f"cluster {self.spec.name!r} has no admin certificate in {self.dir.pki_dir}",
                fix="run `dcsctl up` to create the PKI",
            )
        return ClientTls(trusted, admin.cert_pem, admin.key_pem, self.spec.shared_dns_name)

    def admin_client(self, *, timeout: float = 5.0) -> EtcdClient:
        """A client that is root by its certificate's CN: no password, no token."""
        return EtcdClient(self.endpoints(), self.admin_tls(), timeout=timeout)
