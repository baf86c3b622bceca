"""`member add/remove/replace`: one membership change at a time, each step checked first.

A new member joins as a learner (it cannot cost quorum while it catches up), starts with
`initial-cluster-state=existing`, and is promoted once in sync. Every step asks first
("added? started? promoted?"), so a killed dcsctl is finished by the same command again.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from dcsctl import pki
from dcsctl import spec as spec_module
from dcsctl.errors import ClusterUnhealthy, DcsctlError
from dcsctl.etcd.model import EndpointStatus, MemberInfo
from dcsctl.files import atomic_write
from dcsctl.ops import certs, patroni_deploy, provision, revocation
from dcsctl.ops.cluster import Cluster
from dcsctl.ops.runtime import MemberRuntime, hand_over_leadership
from dcsctl.state import PRIVATE, ClusterRecord, locked
from dcsctl.wait import wait_until
from dcsctl.workflow import Done, Handover, Phase, PhaseOutcome, run_phases

JOIN_TIMEOUT_S = 60.0
T = TypeVar("T")


@dataclass(frozen=True)
class MemberChange:
    member: str
    outcomes: tuple[PhaseOutcome, ...]


def _listed(cluster: Cluster, peer_url: str) -> MemberInfo | None:
    with cluster.admin_client() as client:
        for info in client.member_list():
            if peer_url in info.peer_urls:
                return info
    return None


def _still_listed(cluster: Cluster, peer_url: str, name: str) -> MemberInfo:
    info = _listed(cluster, peer_url)
    if info is None:
        raise DcsctlError(f"{name} is no longer listed in etcd",
                          fix="run the same `dcsctl member` command again")
    return info


def _require_healthy(cluster: Cluster, *, except_member: str | None = None) -> None:
    with cluster.admin_client(timeout=3.0) as client:
        healths = client.health()
    sick = [
        f"{m.name}: {h.error}"
        for m, h in zip(cluster.spec.members, healths, strict=True)
        if not h.healthy and m.name != except_member
    ]
    if sick:
        raise ClusterUnhealthy(
            "membership changes need every member healthy; " + "; ".join(sick),
            fix="bring the cluster back first (`dcsctl up`), then retry",
        )


def _with_member(
    saved: spec_module.ClusterSpec, new: dict[str, object], at: int | None = None
) -> spec_module.ClusterSpec:
    raw = spec_module.digest_source(saved)
    members = [m for m in raw["members"] if m["name"] != new["name"]]
    members.insert(len(members) if at is None else at, new)
    raw["members"] = members
    return spec_module.from_mapping(raw, source="the spec with the new member")


def _without_member(saved: spec_module.ClusterSpec, name: str) -> spec_module.ClusterSpec:
    raw = spec_module.digest_source(saved)
    raw["members"] = [m for m in raw["members"] if m["name"] != name]
    return spec_module.from_mapping(raw, source="the spec without the member")


def _patroni_hosts(cluster: Cluster) -> list[Phase]:
    """The spec's Patroni nodes get an etcd3.yml whose hosts are the members now (Patroni
    reads them at start; a node restarted later must find a live member among them)."""
    if not patroni_deploy.managed(cluster):
        return []
    return [Phase("patroni", "etcd3.yml hosts on the Patroni nodes",
                  lambda: patroni_deploy.deploy_nodes(cluster).note)]


def _once_settled(cluster: Cluster, change: Callable[[], T], what: str) -> T:
    """Run a membership change, retrying while etcd calls the cluster "unhealthy": it
    refuses changes until every member has been connected for 5 s (after any start,
    restart or membership change)."""

    def attempt() -> T | None:
        try:
            return change()
        except ClusterUnhealthy as exc:
            if "unhealthy cluster" not in exc.message:
                raise
            return None

    return wait_until(attempt, timeout=cluster.context.deadline(30), what=what)


class JoinWorkflow:
    """Add one member to a running cluster: learner, start, promote. The config phase
    takes the version install handed on from the run's Handover."""

    def __init__(self, cluster: Cluster, member: spec_module.Member,
                 record: ClusterRecord, handover: Handover | None = None) -> None:
        self.cluster = cluster
        self.member = member
        self.record = record
        self.runtime = MemberRuntime(cluster)
        self.peer_url = cluster.spec.peer_url(member)
        self.handover = handover if handover is not None else Handover()

    def phases(self) -> list[Phase]:
        cluster, clock = self.cluster, self.cluster.context.clock
        return [
            Phase("preflight", "other members healthy, ports free", self.preflight,
                  check_only=True),
            Phase("pki", f"certificate for {self.member.name}",
                  lambda: certs.ensure_pki(cluster, clock()),
                  lambda: certs.plan_pki(cluster, clock()).complete),
            Phase("install", "etcd and its service user on the new host", self.install),
            Phase("add", "add as a learner", self.add, self.added),
            Phase("config", "etcd configuration (initial-cluster-state existing)",
                  self.config),
            Phase("start", f"start {self.member.name}", self.start, self.started),
            Phase("promote", "promote to voting member once in sync", self.promote,
                  self.promoted),
            Phase("health", "wait until every member is healthy", self.runtime.health,
                  check_only=True),
        ]

    def install(self) -> Done[provision.Installs]:
        installs = provision.install(self.cluster, [self.member])
        return Done(installs.note, installs)

    def config(self) -> str:
        """Every member's configuration: the new one's rendered for what install handed
        on, the others' for what their hosts have."""
        others = [m for m in self.cluster.spec.members if m.name != self.member.name]
        versions = {**provision.current_versions(self.cluster, others),
                    **self.handover.need("install", provision.Installs).versions}
        return provision.configure(self.cluster, self.record, versions).note()

    def preflight(self) -> str:
        _require_healthy(self.cluster, except_member=self.member.name)
        return provision.check(self.cluster, list(self.cluster.spec.members))

    def added(self) -> bool:
        return _listed(self.cluster, self.peer_url) is not None

    def add(self) -> str:
        def add_learner() -> MemberInfo:
            with self.cluster.admin_client() as client:
                return client.member_add_learner(self.peer_url)

        info = _once_settled(self.cluster, add_learner,
                             f"etcd did not accept {self.member.name} as a learner")
        return f"learner {info.id:x}"

    def started(self) -> bool:
        info = _listed(self.cluster, self.peer_url)
        return bool(info and info.started and self.cluster.service(self.member.name).is_active())

    def start(self) -> str:
        info = _listed(self.cluster, self.peer_url)
        target, name = self.cluster.target, self.member.name
        if info is not None and not info.started and target.files.holds_data(name):
            # Listed but never started: whatever is in the data dir is from a failed
            # earlier attempt (or another cluster) and must not be joined with.
            target.files.wipe_data_dir(name)
        self.runtime.start_member(self.member)
        wait_until(lambda: self.started() or None, timeout=self.cluster.context.deadline(
            JOIN_TIMEOUT_S), what=f"{self.member.name} did not join",
            fix=f"see `dcsctl logs {self.member.name}`")
        return "started"

    def promoted(self) -> bool:
        info = _listed(self.cluster, self.peer_url)
        return bool(info and not info.is_learner)

    def promote(self) -> str:
        info = _still_listed(self.cluster, self.peer_url, self.member.name)

        def try_promote() -> bool:
            with self.cluster.admin_client() as client:
                leader = next((s.endpoint for s in client.statuses()
                               if isinstance(s, EndpointStatus) and s.is_leader), None)
                if leader is None:
                    return False  # mid-election
                try:
                    client.member_promote(info.id, leader)
                except ClusterUnhealthy:
                    return False  # not in sync yet
            return True

        wait_until(try_promote, timeout=self.cluster.context.deadline(JOIN_TIMEOUT_S),
                   what=f"{self.member.name} did not catch up with the leader")
        return "voting member"


def add(
    cluster: Cluster, name: str, address: str, *, client_port: int | None = None,
    peer_port: int | None = None, ssh: str | None = None, remote_root: str | None = None,
    at: int | None = None,
) -> MemberChange:
    """`at`: the new member's place in the spec's list (default: last)."""
    return _add(cluster, cluster.dir.record(), name, address, client_port=client_port,
                peer_port=peer_port, ssh=ssh, remote_root=remote_root, at=at)


def _add(
    cluster: Cluster, record: ClusterRecord, name: str, address: str, *,
    client_port: int | None = None, peer_port: int | None = None, ssh: str | None = None,
    remote_root: str | None = None, at: int | None = None,
) -> MemberChange:
    """`member add` over the record the command read."""
    new: dict[str, object] = {"name": name, "address": address}
    if client_port:
        new["client_port"] = client_port
    if peer_port:
        new["peer_port"] = peer_port
    if ssh:
        new["ssh"] = ssh
    if remote_root:
        new["remote_root"] = remote_root
    if name in {m.name for m in cluster.spec.members}:
        existing = cluster.spec.member(name)
        if str(existing.address) != address:
            raise DcsctlError(f"member {name} already exists with address {existing.address}",
                              fix="choose another name, or `dcsctl member remove` it first")
    grown = cluster.context.cluster(_with_member(cluster.spec, new, at))
    with locked(grown.dir):
        workflow = JoinWorkflow(grown, grown.spec.member(name), record)
        outcomes = run_phases([*workflow.phases(), *_patroni_hosts(grown)],
                              cluster.context.progress, workflow.handover)
    return MemberChange(name, tuple(outcomes))


def _quorum_after_removal(cluster: Cluster, name: str) -> tuple[int, int]:
    """(healthy members left, members needed for quorum) once `name` is gone."""
    with cluster.admin_client(timeout=3.0) as client:
        healths = client.health()
    remaining = [h for m, h in zip(cluster.spec.members, healths, strict=True) if m.name != name]
    return sum(1 for h in remaining if h.healthy), len(remaining) // 2 + 1


def _hand_over_if_leader(cluster: Cluster, member: spec_module.Member) -> str:
    with cluster.admin_client() as client:
        statuses = dict(zip((m.name for m in cluster.spec.members), client.statuses(),
                            strict=True))
    own = statuses.pop(member.name)
    successor = next((s for s in statuses.values() if isinstance(s, EndpointStatus)), None)
    if isinstance(own, EndpointStatus) and own.is_leader and successor is not None:
        hand_over_leadership(cluster, member, successor.member_id)
        return f"leadership handed to {successor.member_id:x}, "
    return ""


def remove(cluster: Cluster, name: str, *, force: bool = False) -> MemberChange:
    return _remove(cluster, cluster.dir.record(), name, force=force)


def _remove(cluster: Cluster, record: ClusterRecord, name: str, *, force: bool
            ) -> MemberChange:
    """`member remove` over the record the command read."""
    cluster.member(name)
    if len(cluster.spec.members) == 1:
        raise DcsctlError(f"{name} is the last member", fix="use `dcsctl destroy` instead")
    healthy, needed = _quorum_after_removal(cluster, name)
    if healthy < needed and not force:
        raise ClusterUnhealthy(
            f"removing {name} would leave {healthy} healthy of the {needed} members a quorum "
            "needs",
            fix="bring the other members back first (`dcsctl up`), or pass --force if "
            "they are gone for good",
        )
    workflow = LeaveWorkflow(cluster, cluster.spec.member(name), record)
    with locked(cluster.dir):
        outcomes = run_phases(workflow.phases(force=force), cluster.context.progress)
    return MemberChange(name, tuple(outcomes))


class LeaveWorkflow:
    """Take one member out of a running cluster: out of etcd, its certificate revoked,
    stopped and forgotten. `shrunk` is the cluster without it."""

    def __init__(self, cluster: Cluster, member: spec_module.Member,
                 record: ClusterRecord) -> None:
        self.cluster = cluster
        self.member = member
        self.record = record
        self.shrunk = cluster.context.cluster(_without_member(cluster.spec, member.name))
        self.peer_url = cluster.spec.peer_url(member)
        self.certificate = Path(cluster.dir.layout(member.name).cert)

    def phases(self, *, force: bool = False) -> list[Phase]:
        name = self.member.name
        phases = [
            Phase("remove", f"remove {name} from etcd", self.remove, self.removed),
            Phase("revoke", f"revoke {name}'s certificate, push the CRL", self.revoke,
                  self.revoked),
            Phase("stop", f"stop {name}, drop its data, save the spec", self.stop_and_forget),
        ]
        if not force:  # with --force some of the members that stay are known to be down
            phases.append(Phase("health", "wait until the members that stay are healthy",
                                MemberRuntime(self.shrunk).health, check_only=True))
            phases += _patroni_hosts(self.shrunk)
        return phases

    def removed(self) -> bool:
        return _listed(self.cluster, self.peer_url) is None

    def remove(self) -> str:
        cluster, member = self.cluster, self.member
        info = _still_listed(cluster, self.peer_url, member.name)
        handed_over = ""

        def remove_member() -> bool:
            nonlocal handed_over
            handed_over = handed_over or _hand_over_if_leader(cluster, member)
            # Asked of the members that stay: a member that applies its own removal stops
            # at once, and its answer is then "server stopped" although the removal holds.
            with self.shrunk.admin_client() as client:
                client.member_remove(info.id)
            return True

        _once_settled(cluster, remove_member, f"etcd did not remove {member.name}")
        return f"{handed_over}removed {info.id:x}"

    def revoked(self) -> bool:
        if not self.certificate.exists():
            return True  # forgotten already (a re-run after the stop phase)
        serial = pki.serial_number(self.certificate.read_bytes())
        return serial in {r.serial for r in revocation.revoked(self.cluster.dir)}

    def revoke(self) -> str:
        # The removed member's key stays valid for its certificate's lifetime unless
        # revoked; the remaining members refuse it at its next connection.
        revoked = revocation.revoke(self.shrunk, [self.certificate.read_bytes()])
        serials = [f"{r.serial:x}" for r in revoked.added] or [f"{s:x}" for s in revoked.already]
        return f"certificate {', '.join(serials)} revoked, CRL pushed"

    def stop_and_forget(self) -> str:
        cluster, name = self.cluster, self.member.name
        cluster.service(name).stop()
        if cluster.target.remote is not None:  # its key and data leave the host too
            cluster.target.remote.remove(name)
        shutil.rmtree(cluster.dir.member_dir(name), ignore_errors=True)
        # the remaining members' initial-cluster; no restart needed
        provision.configure(self.shrunk, self.record, provision.current_versions(self.shrunk))
        return "stopped, data removed, spec saved"


def replace(cluster: Cluster, name: str) -> MemberChange:
    """A dead or wiped member: remove it, then add it again with a fresh data dir."""
    member = cluster.member(name)
    # back in its old place: the operator's spec file (its order) still matches the saved one
    position = [m.name for m in cluster.spec.members].index(name)
    # The new machine must answer (SSH: its host key known) before the old member is
    # removed: a refused key found after the removal left the cluster a member short.
    provision.check(cluster, [member])
    # Removing and adding a member leave the record as it is: read once for both.
    record = cluster.dir.record()
    marker = cluster.dir.member_dir(name).parent / f".replacing-{name}.json"
    info = _listed(cluster, cluster.spec.peer_url(member))
    if not marker.exists():
        if info is None:
            raise DcsctlError(f"{name} is not a member in etcd",
                              fix=f"use `dcsctl member add {name}`")
        atomic_write(marker, json.dumps({"old_id": info.id}).encode(), PRIVATE)
    old_id = json.loads(marker.read_text())["old_id"]
    outcomes: list[PhaseOutcome] = []
    if info is None or info.id == old_id:
        # Also once etcd has dropped it: a run stopped between the removal and the end of
        # `remove` (revoke, stop, forget) finishes those first, or the new member would
        # be handed the old, revoked certificate.
        outcomes += _remove(cluster, record, name, force=False).outcomes
    address = str(member.address)
    outcomes += _add(cluster, record, name, address, client_port=member.client_port,
                    peer_port=member.peer_port, ssh=member.ssh,
                    remote_root=member.remote_root, at=position).outcomes
    marker.unlink(missing_ok=True)
    return MemberChange(name, tuple(outcomes))

