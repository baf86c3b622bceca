"""`dcsctl up --plan`: what `up` would change on every member's host — etcd, files (with
a diff; secrets never shown, never read back), services — reading, never writing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dcsctl import spec
from dcsctl.ops import certs, patroni_deploy
from dcsctl.ops.cluster import Cluster
from dcsctl.ops.lifecycle import pending_restarts
from dcsctl.ops.patroni_deploy import NodePlan
from dcsctl.ops.provision import member_settings
from dcsctl.state import ClusterRecord
from dcsctl.targets.protocol import FileChange, HostPlan
from dcsctl.workflow import in_parallel

__all__ = ["FileChange", "HostPlan", "NodePlan", "Plan", "plan"]


@dataclass(frozen=True)
class Plan:
    cluster: str
    pki: tuple[str, ...]  # what the pki phase would issue
    hosts: tuple[HostPlan, ...]
    nodes: tuple[NodePlan, ...] = ()  # Patroni nodes' bundles
    patroni_first: str = ""  # what `up` does for the Patroni nodes before a restart

    @property
    def changes(self) -> bool:
        return (bool(self.pki) or any(h.changes for h in self.hosts)
                or any(n.changes for n in self.nodes))


def plan(cluster: Cluster) -> Plan:
    """What `up` would change on every host; reads, never writes (not even the state dir)."""
    name = cluster.spec.name
    record = (cluster.dir.record() if cluster.dir.exists()
              else ClusterRecord(name=name, token=f"{name}-new", members=()))
    missing = certs.plan_pki(cluster, cluster.context.clock()).missing

    def one(member: spec.Member) -> HostPlan:
        layout = cluster.layout(member.name)
        # the pki phase will issue new ones: their content is not known yet
        reissued = (layout.cert, layout.key) if member.name in missing else ()
        # rendered for the etcd `up` would install, which may not be on the host yet
        etcd = cluster.target.etcd.planned(member.name)
        settings = member_settings(cluster, member, record, etcd.version)
        return cluster.target.files.plan(member.name, settings, reissued, etcd)

    hosts = in_parallel(list(cluster.spec.members), one)
    # A restart a run before did not get to (refused, interrupted): config sees no change.
    pending = pending_restarts(cluster) if cluster.dir.exists() else frozenset()
    hosts = [replace(h, service="~ restart etcd (settings written by an earlier run)")
             if h.member in pending and h.service.startswith("=") else h for h in hosts]
    # A restart, or a running member's etcd replaced (`up` rolls the members to it).
    restarts = record.bootstrapped and any(
        h.service.startswith("~") or (h.service.startswith("=") and not h.install.startswith("="))
        for h in hosts)
    first = ("before restarting members: the Patroni bundles below deployed and verified, "
             "then refused (exit 4) while a node's deployed certificate would be refused on "
             "reconnecting (`--accept-patroni-risk SCOPE/NODE` to go ahead)"
             if restarts and patroni_deploy.managed(cluster) else "")
    return Plan(name, tuple(missing), tuple(hosts), tuple(patroni_deploy.planned(cluster)),
                first)
