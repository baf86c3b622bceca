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

import concurrent.futures
import json
import secrets
import shutil
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from dcsctl import render
from dcsctl.errors import ClusterUnhealthy, DcsctlError
from dcsctl.files import atomic_write
from dcsctl.ops import deploy, patroni
from dcsctl.ops.context import Cluster
from dcsctl.ops.deploy import PRE_RESTORE_SUFFIX, RESTORING_SUFFIX
from dcsctl.ops.lifecycle import UpWorkflow, stop_members
from dcsctl.ops.on_hosts import in_parallel
from dcsctl.ops.restore_preview import RestorePreview
from dcsctl.spec import Member
from dcsctl.state import PRIVATE, locked
from dcsctl.workflow import UNCHANGED, Phase, PhaseOutcome, run_phases


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


class RestoreWorkflow:
    def __init__(
        self, cluster: Cluster, preview: RestorePreview, *, keep_old: bool, bump_revision: int,
        mark_compacted: bool,
    ) -> None:
        self.cluster = cluster
        self.preview = preview
        self.verified = preview.verified
        self.manifest = preview.verified.manifest if preview.trusts_manifest else None
        self.keep_old = keep_old
        self.bump_revision = bump_revision
        self.mark_compacted = mark_compacted
        self.up = UpWorkflow(cluster, replacing=True)
        self.plan_path = cluster.dir.root / "restore.json"
        self.plan: RestorePlan | None = None
        self._plan_lock = threading.Lock()
        self.revision = 0
        self.key_count = 0
        self.changes: list[str] = []

    def phases(self) -> list[Phase]:
        return [
            Phase("plan", "new cluster token, progress file", self.make_plan),
            Phase("stop", "stop the running members", self.stop),
            Phase("preflight", "etcd binaries, ports", self.up.preflight, check_only=True),
            Phase("pki", "certificates for every member", self.up.pki, self.up.pki_complete),
            Phase("data", "rebuild every data dir from the snapshot", self.restore_data),
            Phase("config", "etcd configuration per member", self.config),
            Phase("start", "start members", self.up.start, self.up.all_running),
            Phase("health", "wait until every member is healthy", self.up.health,
                  check_only=True),
            Phase("bootstrap", "record the new cluster ID", self.up.bootstrap),
            Phase("auth", "auth enabled, root role and user, root's password", self.auth),
            Phase("verify", "revision, key count, users and roles as in the manifest",
                  self.check_result, check_only=True),
            Phase("records", "dcsctl's Patroni scopes and passwords as etcd now has them",
                  self.records),
            Phase("cleanup", "drop the old data dirs", self.cleanup),
        ]

    # -- plan --
    def _save_plan(self, plan: RestorePlan) -> None:
        self.plan = plan
        atomic_write(self.plan_path, plan.to_json(), PRIVATE)

    def make_plan(self) -> str:
        sha = self.manifest.sha256 if self.manifest else ""
        if self.plan_path.exists():
            plan = RestorePlan.from_json(self.plan_path.read_bytes())
            if plan.snapshot != str(self.verified.path.resolve()):
                raise DcsctlError(
                    f"an interrupted restore of {plan.snapshot} is unfinished",
                    fix=f"finish it first: `dcsctl restore {plan.snapshot}`",
                )
            self.plan = plan
            return f"resuming (already restored: {', '.join(plan.restored) or 'none'})"
        directory = self.cluster.dir
        if not directory.exists():
            directory.save_record(directory.create())
        token = f"{self.cluster.spec.name}-{secrets.token_hex(4)}"
        self._save_plan(RestorePlan(str(self.verified.path.resolve()), sha, token,
                                    self.bump_revision, self.mark_compacted))
        return f"new cluster token {token}"

    # -- stop --
    def stop(self) -> str:
        stopped: list[str] = []
        directory = self.cluster.dir
        if directory.spec_path.exists():
            saved = self.cluster.context.cluster(directory.load_spec())
            stopped += stop_members(saved).stopped
        stopped += stop_members(self.cluster).stopped
        return f"stopped {', '.join(sorted(set(stopped)))}" if stopped else UNCHANGED

    # -- data --
    def _data_dir(self, member: str) -> Path:
        return Path(self.cluster.dir.layout(member).data_dir)

    def _restore_options(self, member: Member) -> list[str]:
        assert self.plan is not None
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

    def _restore_member(self, member: Member) -> None:
        assert self.plan is not None
        if self.cluster.remote:
            deploy.restore_data_dir(self.cluster, member, self.verified.path,
                                    self._restore_options(member))
        else:
            self._restore_local(member)
        with self._plan_lock:
            current = self.plan
            self._save_plan(replace(current, restored=(*current.restored, member.name)))

    def _restore_local(self, member: Member) -> None:
        data = self._data_dir(member.name)
        old = data.with_name(data.name + PRE_RESTORE_SUFFIX)
        temp = data.with_name(data.name + RESTORING_SUFFIX)
        if data.exists() and not old.exists():
            data.rename(old)  # kept aside until the restored cluster is verified
        elif data.exists():
            shutil.rmtree(data)  # a half-finished earlier attempt; the original is in `old`
        shutil.rmtree(temp, ignore_errors=True)
        temp.parent.mkdir(parents=True, exist_ok=True)
        etcdutl = self.cluster.binaries.etcdutl
        assert etcdutl is not None  # verify() already required it
        argv = [str(etcdutl), "snapshot", "restore", str(self.verified.path),
                "--data-dir", str(temp), *self._restore_options(member)]
        result = self.cluster.host.run(argv, timeout=600)
        if result.returncode != 0:
            raise DcsctlError(
                f"etcdutl could not restore {member.name}: {result.stderr.strip()[-400:]}",
                fix="correct the cause and run the same `dcsctl restore` again (it resumes)",
            )
        temp.rename(data)

    def restore_data(self) -> str:
        assert self.plan is not None
        todo = [m for m in self.cluster.spec.members if m.name not in self.plan.restored]
        if not todo:
            return UNCHANGED
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(todo)) as pool:
            for future in [pool.submit(self._restore_member, m) for m in todo]:
                future.result()
        return f"restored {', '.join(m.name for m in todo)}"

    # -- config: the restored data dirs carry the membership; configs say `existing` --
    def config(self) -> str:
        assert self.plan is not None
        directory = self.cluster.dir
        record = directory.record() if directory.exists() else directory.create()
        record = replace(
            record.with_cluster_id(None), token=self.plan.token,
            members=tuple(m.name for m in self.cluster.spec.members), bootstrapped=True,
        )
        directory.save_record(record)
        self.up.record = record
        return self.up.config()

    # -- auth: whatever the snapshot held, dcsctl must be able to run this cluster --
    def auth(self) -> str:
        with self.cluster.admin_client() as client:
            was_enabled = client.auth_enabled()
        notes = []
        if not was_enabled:
            notes.append(f"the snapshot had auth off: {self.up.auth()}")
        root_password = self.cluster.dir.root_password()
        with self.cluster.admin_client() as client:
            if not client.password_ok("root", root_password):
                client.user_change_password("root", root_password)
                notes.append("root's password in the snapshot was not this cluster's: set to "
                             f"{self.cluster.dir.root_password_path}")
        self.changes += notes
        return "; ".join(notes) or UNCHANGED

    # -- records --
    def records(self) -> str:
        with self.cluster.admin_client() as client:
            changed = patroni.reconcile(self.cluster, client)
        self.changes += changed
        return "; ".join(changed) or UNCHANGED

    # -- verify --
    def check_result(self) -> str:
        manifest = self.manifest
        expected_revision = self.verified.facts.revision + (self.plan.bump_revision
                                                            if self.plan else 0)
        with self.cluster.admin_client() as client:
            self.key_count = client.count_keys()
            self.revision = client.revision()
            users, roles = set(client.user_roles()), client.role_names()
        problems = []
        if self.revision < expected_revision:
            problems.append(f"revision {self.revision} < snapshot's {expected_revision}")
        if manifest is not None:
            if manifest.key_count is not None and self.key_count != manifest.key_count:
                problems.append(f"{self.key_count} keys, manifest says {manifest.key_count}")
            if not set(manifest.users) <= users or not set(manifest.roles) <= roles:
                problems.append("users or roles of the backup are missing")
        if problems:
            raise ClusterUnhealthy(
                "the restored cluster does not match the backup: " + "; ".join(problems),
                fix="the old data dirs are kept (*.pre-restore); inspect with `dcsctl status`",
            )
        return f"revision {self.revision}, {self.key_count} keys, {len(users)} users"

    # -- cleanup --
    def cleanup(self) -> str:
        removed: list[str] = []
        if self.cluster.remote and not self.keep_old:
            dropped = in_parallel(list(self.cluster.spec.members),
                                         lambda m: deploy.drop_pre_restore(self.cluster, m))
            removed += [m.name for m, d in zip(self.cluster.spec.members, dropped, strict=True)
                        if d]
        members_root = self.cluster.dir.root / "members"
        wanted = {m.name for m in self.cluster.spec.members}
        for old in members_root.glob(f"*/data{PRE_RESTORE_SUFFIX}"):
            if not self.keep_old:
                shutil.rmtree(old)
                removed.append(old.parent.name)
        for member_dir in members_root.iterdir() if members_root.exists() else []:
            if member_dir.name not in wanted and not self.keep_old:
                shutil.rmtree(member_dir)  # a member of the replaced cluster
        self.plan_path.unlink(missing_ok=True)
        if self.keep_old:
            return "kept old data dirs (*.pre-restore)"
        return f"removed old data of {', '.join(sorted(removed))}" if removed else UNCHANGED


def check_options(*, bump_revision: int, mark_compacted: bool) -> None:
    if mark_compacted and not bump_revision:
        raise DcsctlError("--mark-compacted needs --bump-revision",
                          fix="pass e.g. --bump-revision 1000000000 --mark-compacted")


def restore(
    cluster: Cluster,
    plan: RestorePreview,
    *,
    keep_old: bool = False,
    bump_revision: int = 0,
    mark_compacted: bool = False,
) -> RestoreResult:
    check_options(bump_revision=bump_revision, mark_compacted=mark_compacted)
    workflow = RestoreWorkflow(cluster, plan, keep_old=keep_old,
                               bump_revision=bump_revision, mark_compacted=mark_compacted)
    with locked(cluster.dir):
        outcomes = run_phases(workflow.phases(), cluster.context.progress)
    return RestoreResult(cluster.spec.name, workflow.up.cluster_id, plan.verified.path,
                         workflow.revision, workflow.key_count, tuple(outcomes),
                         tuple(workflow.changes))

