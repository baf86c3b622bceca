"""`dcsctl up --plan`: what `up` would change on every SSH host — packages, files (with a
diff; secrets never shown, never read back), services — reading, never writing.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace

from dcsctl import spec
from dcsctl.etcd.versions import Version
from dcsctl.hosts.protocol import Host
from dcsctl.ops import certs
from dcsctl.ops.context import Cluster
from dcsctl.ops.deploy import (
    DesiredFile,
    Observed,
    desired_files,
    hosts_file,
    member_settings,
    observe,
)
from dcsctl.ops.install import install_state, wanted_version
from dcsctl.ops.on_hosts import in_parallel
from dcsctl.spec import InstallMethod
from dcsctl.state import ClusterRecord


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


def _file_change(host: Host, wanted: DesiredFile, now: Observed) -> FileChange:
    path = str(wanted.path)
    if wanted.content is None:
        return FileChange(path, "create" if now.kind == "-" else "update",
                          ("(issued by the pki phase)",))
    if now.kind == "-":
        return FileChange(path, "create",
                          ("(secret: content not shown)",) if wanted.secret else ())
    if now.is_file(wanted):
        return FileChange(path, "unchanged")
    if wanted.secret:  # never read back: the hash already told it differs
        return FileChange(path, "update", ("(secret: content not shown)",))
    current = host.read(wanted.path) or b""
    if current == wanted.content:
        return FileChange(path, "update", (f"mode/owner -> {format(wanted.mode, 'o')} "
                                           f"{wanted.owner}",))
    diff = difflib.unified_diff(
        current.decode(errors="replace").splitlines(),
        wanted.content.decode(errors="replace").splitlines(),
        "on host", "dcsctl", lineterm="", n=1,
    )
    return FileChange(path, "update", tuple(diff))


# Before apt has installed etcd its version is unknown; Debian packages the 3.5 line.
APT_LINE_GUESS = Version(3, 5, 0)


def plan_host(cluster: Cluster, member: spec.Member, record: ClusterRecord, *,
              reissued: bool) -> HostPlan:
    host = cluster.ssh_host(member.name)
    version = install_state(cluster, member).version
    wanted = wanted_version(cluster)
    method = cluster.spec.install.method
    cluster.remember_version(member.name, wanted or version or APT_LINE_GUESS)
    settings = member_settings(cluster, member, record)
    if version is None or (method is InstallMethod.RELEASE and version != wanted):
        install = (f"+ install etcd via {method}" + (f" ({wanted})" if wanted else "")
                   + (f", replacing {version}" if version else ""))
    else:
        install = f"= etcd {version} present"
    desired = desired_files(cluster, member, settings)
    if reissued:  # the pki phase will issue new ones: their content is not known yet
        layout = cluster.layout(member.name)
        desired = [replace(f, content=None) if f.path in (layout.cert, layout.key) else f
                   for f in desired]
    if (etc_hosts := hosts_file(cluster, host, member)) is not None:
        desired.append(etc_hosts)
    seen = observe(host, [f.path for f in desired])
    files = [_file_change(host, f, now) for f, now in zip(desired, seen, strict=True)]
    service = cluster.service(member.name)
    active = version is not None and service.is_active()
    # etcd reads its settings and its unit at start-up only (certificates it re-reads).
    read_at_start = {str(cluster.layout(member.name).config),
                     str(cluster.host_paths(member.name).unit)}
    reconfigured = any(f.action == "update" and f.path in read_at_start for f in files)
    if not active:
        service_note = "+ start etcd"
    elif reconfigured:
        service_note = "~ restart etcd (configuration changed)"
    else:
        service_note = "= etcd running"
    return HostPlan(member.name, str(host.destination), install, tuple(files), service_note)


@dataclass(frozen=True)
class Plan:
    cluster: str
    pki: tuple[str, ...]  # what the pki phase would issue
    hosts: tuple[HostPlan, ...]

    @property
    def changes(self) -> bool:
        return bool(self.pki) or any(h.changes for h in self.hosts)


def plan(cluster: Cluster) -> Plan:
    """What `up` would change on every host; reads, never writes (not even the state dir)."""
    cluster.require_remote("up --plan")
    name = cluster.spec.name
    record = (cluster.dir.record() if cluster.dir.exists()
              else ClusterRecord(name=name, token=f"{name}-new", members=()))
    missing = certs.plan_pki(cluster, cluster.context.clock()).missing
    hosts = in_parallel(list(cluster.spec.members), lambda m: plan_host(
        cluster, m, record, reissued=m.name in missing))
    return Plan(name, tuple(missing), tuple(hosts))
