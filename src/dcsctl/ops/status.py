"""`status`: one view of the cluster — members, endpoint status, health, alarms."""

from __future__ import annotations

from dataclasses import dataclass

from dcsctl.errors import DcsctlError
from dcsctl.etcd.model import Alarm, EndpointHealth, EndpointStatus, MemberInfo, hex_id
from dcsctl.etcd.versions import Advisory, Version, advisories
from dcsctl.ops.context import Cluster
from dcsctl.ops.patroni import ScopeView, scope_views

STATUS_TIMEOUT_S = 2.0
AUTH_OFF = ("auth is OFF: any client that reaches a client port reads and writes every "
            "key, Patroni's leader keys too (fix: `dcsctl up` enables it again)")


@dataclass(frozen=True)
class MemberView:
    name: str
    endpoint: str
    pid: int | None
    info: MemberInfo | None
    status: EndpointStatus | None
    health: EndpointHealth
    error: str


@dataclass(frozen=True)
class VersionAdvisory:
    """An advisory that applies to an etcd version some members run."""

    version: str
    members: tuple[str, ...]
    advisory: Advisory


def version_advisories(running: dict[str, str]) -> list[VersionAdvisory]:
    """Advisories per running version (member name -> version it reported)."""
    by_version: dict[str, list[str]] = {}
    for member, version in running.items():
        by_version.setdefault(version, []).append(member)
    return [VersionAdvisory(version, tuple(members), advisory)
            for version, members in sorted(by_version.items())
            for advisory in advisories(Version.parse(version))]


@dataclass(frozen=True)
class ClusterView:
    name: str
    cluster_id: str
    members: tuple[MemberView, ...]
    alarms: tuple[Alarm, ...]
    db_quota: int
    problems: tuple[str, ...]
    patroni: tuple[ScopeView, ...] = ()
    advisories: tuple[VersionAdvisory, ...] = ()
    auth_enabled: bool | None = None  # None: not read (no leader)

    @property
    def healthy(self) -> bool:
        """Every member healthy, no alarm, and auth on: with auth off any client that
        reaches a client port may rewrite every Patroni leader key."""
        return (all(m.health.healthy for m in self.members) and not self.alarms
                and self.auth_enabled is not False)

    @property
    def leader(self) -> str | None:
        for member in self.members:
            if member.status and member.status.is_leader:
                return member.name
        return None


def _pid_of(cluster: Cluster, member: str, problems: list[str]) -> int | None:
    """The member's PID as its service manager sees it. An SSH host that cannot be
    reached costs its PID column, not the whole view: etcd may be serving regardless."""
    try:
        return cluster.service(member).running_pid()
    except DcsctlError as exc:
        problems.append(exc.message)
        return None


def status(cluster: Cluster) -> ClusterView:
    spec = cluster.spec
    record = cluster.dir.record()
    problems: list[str] = []
    with cluster.admin_client(timeout=STATUS_TIMEOUT_S) as client:
        statuses, healths = client.survey()
        infos: dict[str, MemberInfo] = {}
        alarms: list[Alarm] = []
        patroni: list[ScopeView] = []
        auth_enabled: bool | None = None
        try:
            infos = {m.name: m for m in client.member_list(linearizable=False)}
            if any(isinstance(s, EndpointStatus) and s.leader_id for s in statuses):
                alarms = client.alarms()
                auth_enabled = client.auth_enabled()
                if not auth_enabled:
                    problems.append(AUTH_OFF)
                patroni = scope_views(cluster, client)
            else:
                # Alarms and keys are read through raft: without a leader each would only
                # cost another timeout before failing. (Health is no guide here: a NOSPACE
                # alarm makes every member report unhealthy while quorum is fine.)
                problems.append("no member knows a leader (quorum lost?): alarms and "
                                "Patroni keys cannot be read")
        except DcsctlError as exc:
            problems.append(exc.message)
    views = []
    for member, state, health in zip(spec.members, statuses, healths, strict=True):
        views.append(
            MemberView(
                name=member.name,
                endpoint=spec.client_url(member),
                pid=_pid_of(cluster, member.name, problems),
                info=infos.get(member.name),
                status=state if isinstance(state, EndpointStatus) else None,
                health=health,
                error=state.message if isinstance(state, DcsctlError) else "",
            )
        )
    running = {v.name: v.status.version for v in views if v.status is not None}
    if len(set(running.values())) > 1:
        problems.append("members run different etcd versions ("
                        + ", ".join(f"{n} {v}" for n, v in running.items())
                        + "): finish the upgrade or downgrade")
    known = {m.name for m in spec.members}
    for name, info in infos.items():
        if name not in known:
            problems.append(f"etcd lists member {name or hex_id(info.id)} that the spec lacks")
    return ClusterView(
        name=spec.name,
        cluster_id=record.cluster_id or "",
        members=tuple(views),
        alarms=tuple(alarms),
        db_quota=spec.etcd.quota_backend_bytes,
        problems=tuple(problems),
        patroni=tuple(patroni),
        advisories=tuple(version_advisories(running)),
        auth_enabled=auth_enabled,
    )
