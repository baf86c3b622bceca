"""`restore FILE`: whole-cluster disaster recovery from one verified snapshot.

Every member's data dir is rebuilt from the same snapshot with a new cluster token (etcd's
recovery guide), the old data dirs are kept aside until the restored cluster has proven
itself (health, revision, key count, users and roles), and progress is recorded in
`restore.json` so a killed restore is finished by running the same command again.

It restores what `restore_preview.preview` accepted (this cluster's snapshot, or another's
on the user's word). Afterwards the cluster has auth on with root in place, and dcsctl's
own records (Patroni scopes, stored passwords) agree with what the snapshot brought back.
"""

from __future__ import annotations

import json
import secrets
import shutil
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from dcsctl import render
from dcsctl.errors import ClusterUnhealthy, DcsctlError
from dcsctl.files import atomic_write
from dcsctl.ops import certs, patroni, provision
from dcsctl.ops.cluster import Cluster
from dcsctl.ops.restore_preview import RestorePreview
from dcsctl.ops.runtime import MemberRuntime, stop_members
from dcsctl.spec import Member
from dcsctl.state import PRIVATE, ClusterRecord, locked
from dcsctl.workflow import UNCHANGED, Done, Handover, Phase, PhaseOutcome, in_parallel, run_phases


@dataclass(frozen=True)
class RestorePlan:
    """What a restore in progress has decided and done (restore.json)."""

    snapshot: str
    sha256: str
    token: str
    bump_revision: int
    mark_compacted: bool
    restored: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        data = asdict(self)
        data["restored"] = list(self.restored)
        return (json.dumps(data, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, content: bytes) -> RestorePlan:
        data = json.loads(content)
        data["restored"] = tuple(data.get("restored", ()))
        return cls(**data)


@dataclass(frozen=True)
class RestoreResult:
    cluster: str
    cluster_id: str
    snapshot: Path
    revision: int
    key_count: int
    outcomes: tuple[PhaseOutcome, ...]
    changes: tuple[str, ...]  # to dcsctl's records and etcd's auth, one line each


def _plan_path(cluster: Cluster) -> Path:
    return cluster.dir.root / "restore.json"


def _save_plan(cluster: Cluster, plan: RestorePlan) -> None:
    atomic_write(_plan_path(cluster), plan.to_json(), PRIVATE)


def make_plan(cluster: Cluster, preview: RestorePreview, *, bump_revision: int,
              mark_compacted: bool) -> tuple[RestorePlan, str]:
    """A new cluster token and the progress file, or the unfinished restore's (the
    caller holds the cluster lock). The plan and what to say about it."""
    verified = preview.verified
    snapshot = str(verified.path.resolve())
    path = _plan_path(cluster)
    if path.exists():
        plan = RestorePlan.from_json(path.read_bytes())
        if plan.snapshot != snapshot:
            raise DcsctlError(
                f"an interrupted restore of {plan.snapshot} is unfinished",
                fix=f"finish it first: `dcsctl restore {plan.snapshot}`",
            )
        return plan, f"resuming (already restored: {', '.join(plan.restored) or 'none'})"
    token = f"{cluster.spec.name}-{secrets.token_hex(4)}"
    sha = verified.manifest.sha256 if preview.trusts_manifest and verified.manifest else ""
    plan = RestorePlan(snapshot, sha, token, bump_revision, mark_compacted)
    _save_plan(cluster, plan)
    return plan, f"new cluster token {token}"


@dataclass(frozen=True)
class Restored:
    """What the verify phase read from the restored cluster."""

    revision: int
    key_count: int


@dataclass(frozen=True)
class Reconfigured:
    """What the config phase wrote: the record of the restored cluster (its new token, no
    cluster ID yet) and the members' files."""

    record: ClusterRecord
    configured: provision.Configured


@dataclass(frozen=True)
class Changes:
    """Changes to etcd's auth or dcsctl's records a phase made, one line each."""

    lines: tuple[str, ...]


class RestoreWorkflow:
    """The phases of `restore`, over the record the command read once (`record`). Each
    phase takes what an earlier one handed on (the record config wrote, the cluster ID
    bootstrap found, the changes auth and records made) from the run's Handover."""

    def __init__(self, cluster: Cluster, running: Cluster, preview: RestorePreview,
                 plan: RestorePlan, record: ClusterRecord, *, keep_old: bool,
                 handover: Handover | None = None) -> None:
        self.cluster = cluster
        self.running = running  # what the state dir holds now: stopped first
        self.verified = preview.verified
        self.manifest = preview.verified.manifest if preview.trusts_manifest else None
        self.keep_old = keep_old
        self.runtime = MemberRuntime(cluster)
        self.plan = plan  # as the run began; restore.json records each member restored
        self.record = record  # as the command read it; config hands on the new one
        self.handover = handover if handover is not None else Handover()

    def phases(self, plan_note: str) -> list[Phase]:
        cluster, clock = self.cluster, self.cluster.context.clock
        members = list(cluster.spec.members)
        return [
            Phase("plan", "new cluster token, progress file", lambda: plan_note),
            Phase("stop", "stop the running members", self.stop),
            Phase("preflight", "etcd binaries, ports",
                  lambda: provision.check(cluster, members), check_only=True),
            Phase("pki", "certificates for every member",
                  lambda: certs.ensure_pki(cluster, clock()),
                  lambda: certs.plan_pki(cluster, clock()).complete),
            Phase("data", "rebuild every data dir from the snapshot", self.restore_data),
            Phase("config", "etcd configuration per member", self.config),
            Phase("start", "start members", self.start, self.started),
            Phase("health", "wait until every member is healthy", self.runtime.health,
                  check_only=True),
            Phase("bootstrap", "record the new cluster ID", self.bootstrap),
            Phase("auth", "auth enabled, root role and user, root's password", self.auth),
            Phase("verify", "revision, key count, users and roles as in the manifest",
                  self.check_result, check_only=True),
            Phase("records", "dcsctl's Patroni scopes and passwords as etcd now has them",
                  self.records),
            Phase("cleanup", "drop the old data dirs", self.cleanup),
        ]

    # -- stop --
    def stop(self) -> str:
        stopped = list(stop_members(self.running).stopped)
        if self.running is not self.cluster:
            stopped += stop_members(self.cluster).stopped
        return f"stopped {', '.join(sorted(set(stopped)))}" if stopped else UNCHANGED

    # -- data --
    def _restore_options(self, member: Member) -> list[str]:
        spec = self.cluster.spec
        options = [
            "--name", member.name,
            "--initial-cluster", render.initial_cluster(spec),
            "--initial-cluster-token", self.plan.token,
            "--initial-advertise-peer-urls", spec.peer_url(member),
        ]
        if self.plan.bump_revision:
            options += ["--bump-revision", str(self.plan.bump_revision), "--mark-compacted"]
        return options

    def restore_data(self) -> str:
        todo = [m for m in self.cluster.spec.members if m.name not in self.plan.restored]
        if not todo:
            return UNCHANGED
        restored = list(self.plan.restored)  # the progress file's, as members finish
        progress = threading.Lock()

        def one(member: Member) -> None:
            self.cluster.target.files.restore_data_dir(member.name, self.verified.path,
                                                       self._restore_options(member))
            with progress:
                restored.append(member.name)
                _save_plan(self.cluster, replace(self.plan, restored=tuple(restored)))

        in_parallel(todo, one)
        return f"restored {', '.join(m.name for m in todo)}"

    # -- config: the restored data dirs carry the membership; configs say `existing` --
    def config(self) -> Done[Reconfigured]:
        record = replace(
            self.record.with_cluster_id(None), token=self.plan.token,
            members=tuple(m.name for m in self.cluster.spec.members), bootstrapped=True,
        )
        self.cluster.dir.save_record(record)
        configured = provision.configure(self.cluster, record,
                                         provision.current_versions(self.cluster))
        return Done(configured.note(), Reconfigured(record, configured))

    # -- start: whatever config wrote is read at start-up --
    def started(self) -> bool:
        return (not self.handover.need("config", Reconfigured).configured.restart
                and self.runtime.all_running())

    def start(self) -> str:
        config = self.handover.need("config", Reconfigured)
        return self.runtime.start_all(config.configured.restart,
                                      bootstrapped=config.record.bootstrapped)

    def bootstrap(self) -> Done[ClusterRecord]:
        config = self.handover.need("config", Reconfigured)
        record = provision.bootstrap(self.cluster, config.record, config.configured.versions)
        return Done(f"cluster ID {record.cluster_id}", record)

    # -- auth: whatever the snapshot held, dcsctl must be able to run this cluster --
    def auth(self) -> Done[Changes]:
        with self.cluster.admin_client() as client:
            was_enabled = client.auth_enabled()
        notes = []
        if not was_enabled:
            notes.append(f"the snapshot had auth off: {provision.enable_auth(self.cluster)}")
        root_password = self.cluster.dir.root_password()
        with self.cluster.admin_client() as client:
            if not client.password_ok("root", root_password):
                client.user_change_password("root", root_password)
                notes.append("root's password in the snapshot was not this cluster's: set to "
                             f"{self.cluster.dir.root_password_path}")
        return Done("; ".join(notes) or UNCHANGED, Changes(tuple(notes)))

    # -- records --
    def records(self) -> Done[Changes]:
        with self.cluster.admin_client() as client:
            changed = patroni.reconcile(self.cluster, client)
        return Done("; ".join(changed) or UNCHANGED, Changes(tuple(changed)))

    def changes(self) -> tuple[str, ...]:
        """What auth and records changed, for the result."""
        return tuple(line for phase in ("auth", "records")
                     for line in self.handover.need(phase, Changes).lines)

    # -- verify --
    def check_result(self) -> Done[Restored]:
        manifest = self.manifest
        expected_revision = self.verified.facts.revision + self.plan.bump_revision
        with self.cluster.admin_client() as client:
            found = Restored(revision=client.revision(), key_count=client.count_keys())
            users, roles = set(client.user_roles()), client.role_names()
        problems = []
        if found.revision < expected_revision:
            problems.append(f"revision {found.revision} < snapshot's {expected_revision}")
        if manifest is not None:
            if manifest.key_count is not None and found.key_count != manifest.key_count:
                problems.append(f"{found.key_count} keys, manifest says {manifest.key_count}")
            if not set(manifest.users) <= users or not set(manifest.roles) <= roles:
                problems.append("users or roles of the backup are missing")
        if problems:
            raise ClusterUnhealthy(
                "the restored cluster does not match the backup: " + "; ".join(problems),
                fix="the old data dirs are kept (*.pre-restore); inspect with `dcsctl status`",
            )
        return Done(f"revision {found.revision}, {found.key_count} keys, {len(users)} users",
                    found)

    # -- cleanup --
    def cleanup(self) -> str:
        removed: list[str] = []
        members = list(self.cluster.spec.members)
        if not self.keep_old:
            files = self.cluster.target.files
            dropped = in_parallel(members, lambda m: files.drop_pre_restore(m.name))
            removed += [m.name for m, d in zip(members, dropped, strict=True) if d]
            members_root = self.cluster.dir.root / "members"
            wanted = {m.name for m in members}
            for member_dir in members_root.iterdir() if members_root.exists() else []:
                if member_dir.name not in wanted:
                    shutil.rmtree(member_dir)  # a member of the replaced cluster
        _plan_path(self.cluster).unlink(missing_ok=True)
        if self.keep_old:
            return "kept old data dirs (*.pre-restore)"
        return f"removed old data of {', '.join(sorted(removed))}" if removed else UNCHANGED


def check_options(*, bump_revision: int, mark_compacted: bool) -> None:
    if mark_compacted and not bump_revision:
        raise DcsctlError("--mark-compacted needs --bump-revision",
                          fix="pass e.g. --bump-revision 1000000000 --mark-compacted")


def restore(
    cluster: Cluster,
    running: Cluster,
    plan: RestorePreview,
    *,
    keep_old: bool = False,
    bump_revision: int = 0,
    mark_compacted: bool = False,
) -> RestoreResult:
    check_options(bump_revision=bump_revision, mark_compacted=mark_compacted)
    with locked(cluster.dir):
        # The record the preview read (the one read of this command), or a new cluster's.
        record = plan.record or _claim(cluster)
        restore_plan, note = make_plan(cluster, plan, bump_revision=bump_revision,
                                       mark_compacted=mark_compacted)
        workflow = RestoreWorkflow(cluster, running, plan, restore_plan, record,
                                   keep_old=keep_old)
        outcomes = run_phases(workflow.phases(note), cluster.context.progress,
                              workflow.handover)
    # verify and bootstrap have no done_if: every restore that gets here ran them
    restored = workflow.handover.need("verify", Restored)
    cluster_id = workflow.handover.need("bootstrap", ClusterRecord).cluster_id
    return RestoreResult(cluster.spec.name, cluster_id or "", plan.verified.path,
                         restored.revision, restored.key_count, tuple(outcomes),
                         workflow.changes())


def _claim(cluster: Cluster) -> ClusterRecord:
    """A restore into a cluster that does not exist yet: its folder and a record."""
    record = cluster.dir.create()
    cluster.dir.save_record(record)
    return record
