"""The Context: everything a use case needs from the outside world, built once.

The CLI builds it from argv and the environment; tests build it the same way with their
own DCSCTL_HOME, so both exercise the same code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from dcsctl import spec as spec_module
from dcsctl.errors import NotFound
from dcsctl.etcd import binaries
from dcsctl.etcd.client import ClientTls, EtcdClient
from dcsctl.hosts.local import LocalHost
from dcsctl.services.process import ProcessService
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

    def cluster(self, cluster_spec: spec_module.ClusterSpec) -> Cluster:
        return Cluster(self, cluster_spec)

    def saved_cluster(self, name: str) -> Cluster:
        """A cluster known only by name: its spec comes from the state dir."""
        directory = ClusterDir(self.home, name)
        if not directory.exists():
            raise NotFound(
                f"no cluster named {name!r} in {self.home}",
                fix="create it with `dcsctl up` (or pass -f/--spec, or set DCSCTL_HOME)",
            )
        return Cluster(self, directory.load_spec())


class Cluster:
    """One cluster as seen from the control machine: spec, state dir, processes, client."""

    def __init__(self, context: Context, cluster_spec: spec_module.ClusterSpec) -> None:
        self.context = context
        self.spec = cluster_spec
        self.dir = ClusterDir(context.home, cluster_spec.name)
        self.host = LocalHost()

    @cached_property
    def binaries(self) -> binaries.Binaries:
        return binaries.find(self.spec.etcd.bin_dir, self.context.environ)

    def service(self, member: str) -> ProcessService:
        return ProcessService(self.dir.pidfile(member), self.dir.logfile(member))

    def endpoints(self) -> list[str]:
        return [self.spec.client_url(m) for m in self.spec.members]

    def admin_client(self, *, timeout: float = 5.0) -> EtcdClient:
        """A client that is root by its certificate's CN: no password, no token."""
        trusted, admin = self.dir.trusted_cas(), self.dir.admin()
        if trusted is None or admin is None:
            raise NotFound(
                f"cluster {self.spec.name!r} has no admin certificate in {self.dir.pki_dir}",
                fix="run `dcsctl up` to create the PKI",
            )
        tls = ClientTls(trusted, admin.cert_pem, admin.key_pem, self.spec.shared_dns_name)
        return EtcdClient(self.endpoints(), tls, timeout=timeout)
