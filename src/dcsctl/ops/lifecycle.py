"""`up`, `down`, `destroy`: bring a cluster to the spec, stop it, remove it.

`up` is a list of phases that observe before they act, so re-running it after an
interruption (or after `down`) finishes the job and reports what it changed. The phases
are `up`'s own; starting, stopping and waiting for members is `runtime`'s, and the steps
other workflows share (checks, install, files, bootstrap, auth) are `provision`'s.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from dcsctl import spec
from dcsctl.errors import EnvironmentProblem
from dcsctl.etcd.model import EndpointStatus
from dcsctl.etcd.versions import Version
from dcsctl.files import atomic_write
from dcsctl.ops import certs, patroni_deploy, patroni_guard, provision, upgrade
from dcsctl.ops.cluster import Cluster
from dcsctl.ops.runtime import DownResult, MemberRuntime, stop_members
from dcsctl.state import PUBLIC, ClusterRecord, locked
from dcsctl.workflow import Done, Handover, Phase, PhaseOutcome, in_parallel, run_phases

__all__ = ["DownResult", "UpResult", "destroy", "down", "stop_members", "up"]


@dataclass(frozen=True)
class UpResult:
    cluster: str
    cluster_id: str
    outcomes: tuple[PhaseOutcome, ...]
    warnings: tuple[str, ...]
    record: ClusterRecord  # as `up` left it: what `status` after it shows, not read again

    @property
    def changed(self) -> bool:
        return any(outcome.changed for outcome in self.outcomes)


def _identity_of(cluster_spec: spec.ClusterSpec) -> list[tuple[str, str]]:
    return [(m.name, cluster_spec.peer_url(m)) for m in cluster_spec.members]


def _check_same_cluster(cluster: Cluster, saved: spec.ClusterSpec) -> None:
    """The state dir must hold this cluster, not another one under the same name."""
    if _identity_of(saved) != _identity_of(cluster.spec):
        was = ", ".join(f"{n}={u}" for n, u in _identity_of(saved))
        raise EnvironmentProblem(
            f"the state dir {cluster.dir.root} holds another cluster named "
            f"{cluster.spec.name!r} (members {was}); this spec's members differ",
            fix="give this spec another `name:`, use another DCSCTL_HOME, or remove the "
            f"old cluster with `dcsctl destroy --cluster {cluster.spec.name}`",
        )


def _pending_path(cluster: Cluster) -> Path:
    return cluster.dir.root / "restart-pending.json"


def pending_restarts(cluster: Cluster) -> frozenset[str]:
    """Members whose new settings or binary are in place but who were not restarted
    (the restart was refused, or the run was interrupted before it): config and install
    see nothing left to change the next time, so the need is kept here."""
    path = _pending_path(cluster)
    return frozenset(json.loads(path.read_text())) if path.exists() else frozenset()


class _PendingRestarts:
    """Adds to the pending restarts as each member's need is known (config writes the
    members' files in parallel; one may be called while another host still works)."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._lock = threading.Lock()

    def add(self, names: Collection[str]) -> None:
        with self._lock:
            pending = pending_restarts(self._cluster)
            if set(names) - pending:
                atomic_write(_pending_path(self._cluster),
                             json.dumps(sorted(pending | set(names))).encode(), PUBLIC)


class UpWorkflow:
    """The phases of `up`, over the record read once before them. Each phase takes what
    the phases before it handed on (the members to restart: what install and config
    found; the record: what bootstrap wrote) from the run's Handover. `accepted`: the
    Patroni nodes (SCOPE/NODE) whose risk the user accepts when members restart."""

    def __init__(self, cluster: Cluster, record: ClusterRecord,
                 handover: Handover | None = None,
                 accepted: Collection[str] = frozenset()) -> None:
        self.cluster = cluster
        self.runtime = MemberRuntime(cluster)
        self.record = record  # as it was before the phases; bootstrap hands on the new one
        self.handover = handover if handover is not None else Handover()
        self.accepted = frozenset(accepted)

    @property
    def members(self) -> list[spec.Member]:
        return list(self.cluster.spec.members)

    def phases(self) -> list[Phase]:
        return [
            Phase("preflight", self.cluster.target.checks.scope,
                  lambda: provision.check(self.cluster, self.members), check_only=True),
            Phase("pki", "CA, member, admin and JWT keys", self.pki, self.pki_complete),
            Phase("install", "etcd (and its service user) on every host", self.install),
            Phase("config", "etcd configuration per member", self.config),
            Phase("start", "start members", self.start, self.started),
            Phase("health", "wait until every member is healthy", self.runtime.health,
                  check_only=True),
            Phase("bootstrap", "record cluster ID, switch configs to existing",
                  self.bootstrap, self.bootstrapped),
            Phase("auth", "root role and user, auth enabled",
                  lambda: provision.enable_auth(self.cluster),
                  lambda: provision.auth_enabled(self.cluster)),
            *([Phase("patroni", "scopes' users; bundles on the database nodes, verified",
                     lambda: patroni_deploy.deploy(self.cluster).note)]
              if self.cluster.spec.patroni else []),
        ]

    def pki_complete(self) -> bool:
        return certs.plan_pki(self.cluster, self.cluster.context.clock()).complete

    def pki(self) -> str:
        return certs.ensure_pki(self.cluster, self.cluster.context.clock())

    def install(self) -> Done[provision.Installs]:
        installs = provision.install(self.cluster, self.members)
        return Done(installs.note, installs)

    def config(self) -> Done[provision.Configured]:
        installs = self.handover.need("install", provision.Installs)
        # Recorded before anything else can fail, and each member's as soon as its files
        # are written: a host that fails here must not make the others' restarts be
        # forgotten (their files look unchanged to the next run).
        pending = _PendingRestarts(self.cluster)
        pending.add(installs.restart)
        configured = provision.configure(self.cluster, self.record, installs.versions,
                                         on_restart=lambda name: pending.add((name,)))
        return Done(configured.note(installs.restart), configured)

    def restart(self) -> frozenset[str]:
        """Running members that must restart: a new binary (install), new settings
        (config), or either from a run whose restart did not happen."""
        pending = pending_restarts(self.cluster)
        running = frozenset(m.name for m in self.members if m.name in pending
                            and self.cluster.service(m.name).is_active())
        return (self.handover.need("install", provision.Installs).restart
                | self.handover.need("config", provision.Configured).restart | running)

    def started(self) -> bool:
        """The start phase's check: nothing to restart, every member running."""
        return not self.restart() and self.runtime.all_running()

    def start(self) -> str | Done[patroni_guard.Prepared]:
        restart = self.restart()
        prepared = None
        if restart and self.record.bootstrapped:
            # Restarted members make Patroni reconnect: its nodes' certificates first.
            prepared = patroni_guard.deploy_then_require_fit(
                self.cluster, f"up (it restarts {', '.join(sorted(restart))})",
                self.accepted)
        note = self.runtime.start_all(restart, bootstrapped=self.record.bootstrapped)
        _pending_path(self.cluster).unlink(missing_ok=True)
        if prepared is None or not prepared.note:
            return note
        return Done(f"{prepared.note}; {note}", prepared)

    def bootstrapped(self) -> bool:
        """Observes only: the record read once before the phases says it (a bootstrap of
        this run replaces it, through the phase's own result)."""
        return bool(self.record.bootstrapped and self.record.cluster_id)

    def bootstrap(self) -> Done[ClusterRecord]:
        configured = self.handover.need("config", provision.Configured)
        record = provision.bootstrap(self.cluster, self.record, configured.versions)
        return Done(f"cluster ID {record.cluster_id}", record)


def _change_binaries_first(cluster: Cluster, running: Cluster, record: ClusterRecord | None,
                           accepted: Collection[str]) -> tuple[str, ...]:
    """A running cluster whose spec names another etcd (SSH: another release tarball;
    lab: another etcd.bin_dir) moves there through the one rolling path of `dcsctl
    upgrade` (supported paths only, snapshot first, leader last) before the other phases
    run."""
    if record is None or not record.bootstrapped:
        return ()
    wanted = cluster.target.etcd.wanted()
    if wanted is None:
        return ()
    installed = in_parallel(list(cluster.spec.members),
                            lambda m: cluster.target.etcd.installed(m.name))
    if None in installed:
        # No etcd where the spec puts it (install: apt -> release, another bin_dir): the
        # members still run another binary, and what they run decides (upgrade paths).
        with running.admin_client(timeout=3.0) as client:
            installed += [Version.parse(s.version) for s in client.statuses()
                          if isinstance(s, EndpointStatus)]
    if all(version in (None, wanted) for version in installed):
        return ()
    with locked(cluster.dir):
        # The roll restarts every member: Patroni's nodes first, as for a restart below.
        prepared = patroni_guard.deploy_then_require_fit(
            cluster, f"up (it moves the members to etcd {wanted})", accepted)
        if prepared.note:
            cluster.context.progress.message(prepared.note)
        upgrade.roll(running, cluster, wanted, record)
    return prepared.warnings


def up(cluster: Cluster, accepted: Collection[str] = frozenset()) -> UpResult:
    """`accepted`: Patroni nodes (SCOPE/NODE) whose deployed certificate may be refused
    when a restart of the members makes them reconnect (`--accept-patroni-risk`)."""
    warnings = list(cluster.spec.warnings())
    fresh = not cluster.dir.root.exists()
    try:
        record = cluster.dir.record() if cluster.dir.exists() else None
        running = cluster.as_recorded()
        _check_same_cluster(cluster, running.spec)
        warnings += _change_binaries_first(cluster, running, record, accepted)
        with locked(cluster.dir):
            workflow = UpWorkflow(cluster, record or cluster.dir.create(), accepted=accepted)
            outcomes = run_phases(workflow.phases(), cluster.context.progress,
                                  workflow.handover)
    except BaseException:
        # A first `up` that failed before it wrote anything leaves no empty folder behind.
        if fresh and not cluster.dir.exists():
            cluster.dir.remove()
        raise
    installs = workflow.handover.get("install", provision.Installs)
    warnings += installs.warnings if installs else ()
    prepared = workflow.handover.get("start", patroni_guard.Prepared)
    warnings += prepared.warnings if prepared else ()
    record = workflow.handover.get("bootstrap", ClusterRecord) or workflow.record
    if any(outcome.changed for outcome in outcomes):
        # A renewal (a member's certificate, a Patroni node's deployed bundle) clears the
        # certificate alert now, not at the next `certs check` or backup timer run.
        # (Imported here: the rotation modules would slow every command that imports this.)
        from dcsctl.ops import expiry

        warnings += expiry.check(cluster).warnings
    return UpResult(cluster.spec.name, record.cluster_id or "", tuple(outcomes),
                    tuple(warnings), record)


def down(cluster: Cluster) -> DownResult:
    """Stop every member by its verified PID; data, PKI and config stay."""
    with locked(cluster.dir):
        return stop_members(cluster)


@dataclass(frozen=True)
class Destroyed:
    down: DownResult
    root: Path  # the state dir removed
    left_behind: str  # what the target leaves in place on purpose ("" for nothing)


def destroy(cluster: Cluster) -> Destroyed:
    """Stop the members and remove the whole state dir (data, PKI, credentials), and on
    the members' hosts everything dcsctl put there (keys first among them)."""
    result = down(cluster)
    remote = cluster.target.remote
    if remote is not None:
        in_parallel(list(cluster.spec.members), lambda m: remote.remove(m.name))
    cluster.dir.remove()
    return Destroyed(result, cluster.dir.root, remote.left_behind() if remote else "")
