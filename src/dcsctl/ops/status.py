"""`status`: one view of the cluster — members, endpoint status, health, alarms."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from dcsctl.errors import DcsctlError
from dcsctl.etcd.model import Alarm, EndpointHealth, EndpointStatus, MemberInfo, hex_id
from dcsctl.etcd.versions import (
    Advisory,
    Version,
    advisories,
    deploy_refusal,
    members_by_version,
)
from dcsctl.ops import escrow_status
from dcsctl.ops.cluster import Cluster
from dcsctl.ops.patroni import ScopeView, scope_views
from dcsctl.state import ClusterRecord
from dcsctl.targets.disk import member_disk
from dcsctl.targets.protocol import Verdict

STATUS_TIMEOUT_S = 2.0
STATUS_SSH_TIMEOUT_S = 3.0  # SSH connect timeout for the PID column (the spec's is for work)
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


def version_advisories(by_version: dict[Version, list[str]]) -> list[VersionAdvisory]:
    """Advisories per running version (version -> the members that reported it)."""
    return [VersionAdvisory(str(version), tuple(members), advisory)
            for version, members in sorted(by_version.items())
            for advisory in advisories(version)]


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


class _PidLookup:
    """One member's PID as its service manager sees it, asked in a thread of its own.

    An SSH host that cannot be reached costs its PID column, not the whole view: etcd may
    be serving regardless. All lookups start together, before etcd is asked, with a short
    SSH connect timeout, and the view waits for them a bounded time: a dead host's SSH no
    longer sets the pace of `status` (it used to cost the spec's connect timeout, 10 s,
    per unreachable host, one after the other). The thread is a daemon: dcsctl never
    waits for a lookup it gave up on.
    """

    def __init__(self, cluster: Cluster, member: str) -> None:
        self.member = member
        self.pid: int | None = None
        self.error = ""
        self._thread = threading.Thread(target=self._run, args=(cluster,), daemon=True)
        self._thread.start()

    def _run(self, cluster: Cluster) -> None:
        try:
            self.pid = cluster.service(self.member).running_pid()
            # A full data filesystem stops etcd (or soon will): say so, not just "down".
            disk = member_disk(cluster.target, self.member)
            if disk.verdict is Verdict.FAIL:
                self.error = f"{self.member}: {disk.detail}"
        except DcsctlError as exc:
            self.error = exc.message

    def result(self, deadline: float, problems: list[str]) -> int | None:
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            problems.append(f"{self.member}: no answer over SSH within "
                            f"{STATUS_SSH_TIMEOUT_S:.0f} s (PID not shown)")
            return None
        if self.error:
            problems.append(self.error)
        return self.pid


def _pid_lookups(cluster: Cluster) -> dict[str, _PidLookup]:
    """Asked through a copy of the cluster whose SSH settings (if it uses any) give up
    connecting after STATUS_SSH_TIMEOUT_S."""
    ssh = cluster.spec.ssh
    quick = ssh.model_copy(update={"connect_timeout_s": min(
        ssh.connect_timeout_s, int(STATUS_SSH_TIMEOUT_S))})
    source = cluster.context.cluster(cluster.spec.model_copy(update={"ssh": quick}))
    return {m.name: _PidLookup(source, m.name) for m in cluster.spec.members}


def status(cluster: Cluster, record: ClusterRecord | None = None) -> ClusterView:
    """`record`: the cluster's record, when the command read it already (`up`)."""
    spec = cluster.spec
    record = record or cluster.dir.record()
    problems: list[str] = []
    lookups = _pid_lookups(cluster)
    pids_deadline = time.monotonic() + STATUS_SSH_TIMEOUT_S + 1.0
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
                pid=lookups[member.name].result(pids_deadline, problems),
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
    by_version = members_by_version((n, Version.parse(v)) for n, v in running.items())
    if refused := deploy_refusal(by_version, accepted=()):
        # It keeps running, accepted or not: the risk is there all the same.
        accepted = ", ".join(spec.etcd.accept_risks)
        problems.append(refused.message.replace("refusing to deploy", "running")
                        + (f" (accepted in the spec: {accepted})" if accepted else "")
                        + f"; fix: {refused.fix}")
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
        advisories=tuple(version_advisories(by_version)),
        auth_enabled=auth_enabled,
    )


@dataclass(frozen=True)
class Looked:
    view: ClusterView
    warnings: tuple[str, ...]  # about the control machine's own state


def look(cluster: Cluster) -> Looked:
    """`dcsctl status`: the cluster's view, and a warning when the escrow of this control
    machine's state is older than the last change of keys or users (or missing)."""
    stale = escrow_status.staleness(
        cluster.dir, store_configured=cluster.spec.backup_store is not None)
    return Looked(status(cluster), (stale,) if stale else ())
