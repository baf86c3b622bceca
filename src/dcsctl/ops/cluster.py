"""The Context: everything a use case needs from the outside world, built once.

The CLI builds it from argv and the environment; tests build it the same way with their
own DCSCTL_HOME, so both exercise the same code.
"""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from dcsctl import releases, render
from dcsctl import spec as spec_module
from dcsctl.errors import EnvironmentProblem, NotFound
from dcsctl.etcd import binaries
from dcsctl.etcd.client import EtcdClient
from dcsctl.etcd.tls import ClientTls
from dcsctl.etcd.versions import Version
from dcsctl.home import default_home
from dcsctl.hosts.local import LocalHost
from dcsctl.hosts.protocol import Host
from dcsctl.services.protocol import Service
from dcsctl.spec import InstallMethod
from dcsctl.state import ClusterDir
from dcsctl.targets.factory import (
    ClosableHost,
    ControlMachine,
    LocalProcess,
    database_host,
    local_process,
    target_for,
)
from dcsctl.targets.protocol import Target
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
    """One cluster as seen from the control machine: spec, state dir, the target its
    members run on, and an admin client."""

    def __init__(self, context: Context, cluster_spec: spec_module.ClusterSpec) -> None:
        self.context = context
        self.spec = cluster_spec
        self.dir = ClusterDir(context.home, cluster_spec.name)
        self.host = LocalHost()  # the control machine
        self.target: Target = target_for(cluster_spec, ControlMachine(
            self.dir, lambda: self.binaries, context.environ,
            context.home / ".cache" / "releases"))
        self._database_hosts: dict[tuple[str, str], ClosableHost] = {}

    def as_recorded(self) -> Cluster:
        """The cluster its state dir holds: the spec saved by the last change (members added
        since, the etcd it runs), whatever spec file named it; itself before the first `up`."""
        if self.dir.spec_path.exists():
            return self.context.cluster(self.dir.load_spec())
        return self

    @cached_property
    def binaries(self) -> binaries.Binaries:
        """The etcd of this machine: what lab members run, and the tools dcsctl runs here.
        A release tarball the spec pins (unpacked in the cache), else etcd.bin_dir,
        DCSCTL_ETCD_BIN_DIR, PATH, dcsctl's bin dir."""
        install = self.spec.install
        if install.method is InstallMethod.RELEASE:
            located = releases.locate(install, releases.arch_of(platform.machine()),
                                      self.context.environ)
            tarball = releases.fetch(located.source, located.sha256,
                                     self.context.home / ".cache" / "releases",
                                     located.ca_file)
            found = binaries.find(str(releases.unpacked(tarball)), self.context.environ)
            named = install.version or releases.named_version(located.source)
            if named and Version.parse(named) != found.version:
                raise EnvironmentProblem(
                    f"{located.source} holds etcd {found.version}, but the spec says {named}",
                    fix="correct install.version, or point install.tarball and install.sha256 "
                    f"at etcd {named}'s release")
            return found
        return binaries.find(self.spec.etcd.bin_dir, self.context.environ)

    def member(self, name: str) -> spec_module.Member:
        """The spec's member called `name`; a name it does not list is the user's to fix."""
        try:
            return self.spec.member(name)
        except KeyError:
            names = ", ".join(m.name for m in self.spec.members)
            raise NotFound(f"no member {name!r} in cluster {self.spec.name!r}",
                           fix=f"name one of its members: {names}") from None

    def host_of(self, member: str) -> Host:
        """The machine that runs `member`."""
        return self.target.placement.host(member)

    def layout(self, member: str) -> render.MemberLayout:
        """Where the member's configuration, certificates and data live on its host."""
        return self.target.placement.layout(member)

    def service(self, member: str) -> Service:
        return self.target.placement.service(member)

    def sync_tls(self, member: str) -> None:
        """Bring the member's certificates and keys on its host to what the control machine
        issued, where its host keeps a copy of its own (the lab's members read the state
        dir's)."""
        if self.target.remote is not None:
            self.target.remote.sync_tls(member)

    def process(self, member: str) -> LocalProcess:
        """A lab member's local process (upgrade and fault tests look at it directly)."""
        return local_process(self.target, member)

    def database_host(self, scope: str, node: str) -> ClosableHost:
        """The host of a Patroni node the spec lists (one SSH connection per run)."""
        key = (scope, node)
        if key not in self._database_hosts:
            found = self.spec.patroni.scope(scope) if self.spec.patroni else None
            if found is None:
                raise NotFound(f"scope {scope!r} is not in the spec's patroni: section",
                               fix="list it under patroni.scopes with its nodes")
            try:
                self._database_hosts[key] = database_host(self.spec, found.node(node))
            except KeyError:
                raise NotFound(f"scope {scope!r} has no node {node!r} in the spec",
                               fix=f"add it under the scope's nodes, or name one of "
                               f"{', '.join(n.name for n in found.nodes) or 'its nodes'}"
                               ) from None
        return self._database_hosts[key]

    def close(self) -> None:
        """End the shared connections to the members' and database nodes' hosts."""
        self.target.close()
        for host in self._database_hosts.values():
            host.close()

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
