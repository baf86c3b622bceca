"""`maintenance` (compact, defragment, disarm NOSPACE) and `restart` (rolling).

Both touch one member at a time, followers first and the leader last, and stop at the
first member that is not healthy: maintenance must never be what breaks quorum.
"""

from __future__ import annotations

from dataclasses import dataclass

from dcsctl.errors import DcsctlError
from dcsctl.etcd.client import EtcdClient
from dcsctl.etcd.model import EndpointStatus
from dcsctl.ops.cluster import Cluster
from dcsctl.ops.runtime import MemberRuntime, ordered_members
from dcsctl.spec import Member
from dcsctl.state import locked


@dataclass(frozen=True)
class MaintenanceResult:
    revision: int
    db_size_before: dict[str, int]
    db_size_after: dict[str, int]
    disarmed: tuple[str, ...]


def defragment_members(cluster: Cluster, client: EtcdClient, ordered: list[Member]) -> None:
    """Defragment one member at a time, in the order given (followers first, leader
    last): a member being defragmented answers nothing until it is done."""
    for member in ordered:
        cluster.context.progress.message(f"defragmenting {member.name}")
        client.defragment(cluster.spec.client_url(member))


def maintain(cluster: Cluster) -> MaintenanceResult:
    """Compact history to now, defragment each member, disarm NOSPACE once space is back."""
    with locked(cluster.dir), cluster.admin_client(timeout=10.0) as client:
        ordered = ordered_members(cluster, client)
        before = {m.name: s.db_size for m, s in ordered}
        revision = client.revision()
        try:
            client.compact(revision)
        except DcsctlError as exc:
            if "compacted" not in exc.message:
                raise  # "already compacted" means there is nothing to do
        defragment_members(cluster, client, [m for m, _ in ordered])
        after_statuses = client.statuses()
        after = {
            m.name: s.db_size for m, s in zip(cluster.spec.members, after_statuses, strict=True)
            if isinstance(s, EndpointStatus)
        }
        disarmed: tuple[str, ...] = ()
        alarms = client.alarms()
        if alarms and max(after.values(), default=0) < cluster.spec.etcd.quota_backend_bytes:
            client.disarm_alarms()
            disarmed = tuple(sorted({a.kind for a in alarms}))
    return MaintenanceResult(revision, before, after, disarmed)


@dataclass(frozen=True)
class RestartResult:
    order: tuple[str, ...]


def rolling_restart(cluster: Cluster) -> RestartResult:
    """Restart members one at a time; the leader hands over leadership before it goes."""
    with locked(cluster.dir):
        return RestartResult(MemberRuntime(cluster).restart_all())
