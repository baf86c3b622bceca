"""Every change of etcd binaries — `dcsctl upgrade`, `dcsctl downgrade`, and `dcsctl up`
when the spec names another release — goes through one path:

1. every member answers, and etcd supports the way from each running version to the new
   one (upgrade floors, one minor at a time; downgrades only through etcd's API);
2. a verified snapshot is taken before anything changes;
3. members are replaced one at a time, followers first and the leader last (it hands over
   leadership first): stop, `etcdutl check v2store` when 3.5 data is about to meet 3.6,
   put the new binary there (SSH hosts), configuration rendered for the new version,
   start, wait until healthy, compare every member's hashkv;
4. the cluster version is waited for.

A killed run is resumed by the same command: members already on the new version are left
alone (the snapshot is only taken while some member still runs the old one).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath

from dcsctl.errors import ClusterUnhealthy, DcsctlError, EnvironmentProblem, UsageError
from dcsctl.etcd.model import EndpointStatus
from dcsctl.etcd.tls import cluster_version, metrics_text
from dcsctl.etcd.versions import (
    V2STORE_CHECK_BEFORE,
    Version,
    downgrade_problem,
    needs_snapshot_on_3_6,
    upgrade_problem,
)
from dcsctl.ops import backup, provision
from dcsctl.ops.cluster import Cluster
from dcsctl.ops.provision import member_settings
from dcsctl.ops.runtime import MemberRuntime, hand_over_leadership, ordered_members
from dcsctl.spec import Member
from dcsctl.state import ClusterRecord, locked
from dcsctl.targets.protocol import SameVersion
from dcsctl.wait import wait_until

CLUSTER_VERSION_TIMEOUT_S = 60.0  # etcd's leader re-decides the cluster version every ~5 s
DOWNGRADE_STEP_TIMEOUT_S = 60.0  # etcd's leader checks every ~5 s


@dataclass(frozen=True)
class UpgradeResult:
    from_version: str
    to_version: str
    upgraded: tuple[str, ...]
    snapshot: Path | None
    cluster_version: str = ""


def running_versions(cluster: Cluster) -> dict[str, Version]:
    """The version every member reports; all of them must answer."""
    with cluster.admin_client() as client:
        statuses = client.statuses()
    down = [f"{m.name} ({s.message})" for m, s in zip(cluster.spec.members, statuses, strict=True)
            if not isinstance(s, EndpointStatus)]
    if down:
        raise ClusterUnhealthy(f"members not answering: {', '.join(down)}",
                               fix="bring every member up (`dcsctl up`) before changing "
                               "etcd's version")
    return {m.name: Version.parse(s.version)
            for m, s in zip(cluster.spec.members, statuses, strict=True)
            if isinstance(s, EndpointStatus)}


def check_upgrade_path(running: dict[str, Version], wanted: Version) -> None:
    for current in sorted(set(running.values())):
        if problem := upgrade_problem(current, wanted):
            steps = " then ".join(f"`dcsctl upgrade --to {s}`" for s in problem.steps)
            raise DcsctlError(
                f"refusing to move etcd {current} to {wanted}: {problem}",
                fix=f"run {steps}" if steps else "choose a version etcd's upgrade guide "
                "supports (see `dcsctl status` for what runs now)",
            )


# -- the one rolling replacement --

def _v2store_check(cluster: Cluster, member: Member) -> None:
    """etcd 3.6 drops the v2 store: `etcdutl check v2store` (a 3.5 tool, run with the
    member's current etcdutl while it is stopped) must find no v2 content first."""
    etcdutl = cluster.target.etcd.running_executable(member.name).parent / "etcdutl"
    data_dir = cluster.layout(member.name).data_dir
    result = cluster.host_of(member.name).run(
        [str(etcdutl), "check", "v2store", "--data-dir", str(data_dir)])
    if not result.ok:
        raise EnvironmentProblem(
            f"{member.name}: `etcdutl check v2store` refuses the move to 3.6: "
            f"{(result.stderr or result.stdout).strip()[-300:]}",
            fix="the data dir holds etcd v2 data that 3.6 cannot read: migrate it to v3 "
            "(etcd's v2 migration guide) before upgrading; the member was started again "
            "on its old version",
        )


SNAPSHOT_TIMEOUT_S = 30.0
SNAPSHOT_SAVES = re.compile(r"^etcd_debugging_snap_save_total_duration_seconds_count (\S+)$",
                            re.MULTILINE)


def _snapshot_on_current_version(before: Cluster, member: Member, executable: PurePath,
                                 current: Version, record: ClusterRecord) -> None:
    """Start the stopped member once more on its current etcd with snapshot-count 1, so it
    saves a raft snapshot at once and its WAL no longer begins with entries that the next
    version cannot replay; then stop it again."""
    before.target.files.write_config(
        member.name, member_settings(before, member, record, current, {"snapshot-count": "1"}))
    runtime = MemberRuntime(before)
    runtime.start_member(member, executable)
    runtime.wait_healthy([member])
    endpoint, tls = before.spec.client_url(member), before.admin_tls()
    seen = ""

    def saved() -> bool:
        nonlocal seen
        try:
            match = SNAPSHOT_SAVES.search(metrics_text(endpoint, tls))
        except OSError as exc:
            seen = str(exc)
            return False
        seen = f"{match.group(1) if match else 'no'} snapshot saves"
        return match is not None and float(match.group(1)) >= 1

    wait_until(saved, timeout=before.context.deadline(SNAPSHOT_TIMEOUT_S),
               what=f"{member.name} did not save a raft snapshot", last_error=lambda: seen)
    before.service(member.name).stop()


HASH_TIMEOUT_S = 30.0


def _hashes_agree(cluster: Cluster) -> None:
    """Every member holds the same key-value store (hashkv at one past revision). A
    member that has just started may not have applied that revision yet ("required
    revision is a future revision"): it is asked again until it has."""
    hashes: dict[str, tuple[int, int]] = {}
    last = ""
    with cluster.admin_client(timeout=10.0) as client:
        revision = client.revision()

        def all_hashed() -> bool:
            nonlocal last
            for member in cluster.spec.members:
                if member.name not in hashes:
                    try:
                        hashes[member.name] = client.hash_kv(cluster.spec.client_url(member),
                                                             revision)
                    except DcsctlError as exc:
                        if "future revision" not in exc.message:
                            raise
                        last = exc.message
                        return False
            return True

        wait_until(all_hashed, timeout=cluster.context.deadline(HASH_TIMEOUT_S),
                   what=f"members did not reach revision {revision}", last_error=lambda: last)
    if len({hashes[m.name] for m in cluster.spec.members}) > 1:
        raise ClusterUnhealthy(
            f"members disagree on the store at revision {revision}: "
            + ", ".join(f"{n} {h:x}/{c}" for n, (h, c) in hashes.items()),
            fix="stop here: restore the snapshot taken before the change "
            "(`dcsctl restore`) and report the etcd versions involved",
        )


def _wait_cluster_version(cluster: Cluster, line: str) -> str:
    tls = cluster.admin_tls()
    endpoint = cluster.endpoints()[0]
    seen = ""

    def reached() -> bool:
        nonlocal seen
        try:
            seen = cluster_version(endpoint, tls)
        except OSError as exc:
            seen = str(exc)
        return seen.startswith(f"{line}.")

    wait_until(reached, timeout=cluster.context.deadline(CLUSTER_VERSION_TIMEOUT_S),
               what=f"the cluster version did not become {line}", last_error=lambda: seen)
    return seen


def replace_binaries(before: Cluster, after: Cluster, wanted: Version,
                     record: ClusterRecord) -> tuple[str, ...]:
    """Move each member still on another version to `wanted`, one at a time, leader last.
    `before` is the cluster as it runs, `after` the same cluster with the new binaries
    (its target puts them on each host just before the member starts again); `record`
    is the cluster's record as the command read it."""
    runtime = MemberRuntime(after)
    with before.admin_client() as client:
        ordered = ordered_members(before, client)
    moved = []
    for member, status in ordered:
        current = Version.parse(status.version)
        if current == wanted:
            continue
        before.context.progress.message(f"{member.name}: etcd {current} -> {wanted}")
        if status.is_leader and len(ordered) > 1:
            hand_over_leadership(before, member, ordered[0][1].member_id)
        executable = before.target.etcd.running_executable(member.name)
        before.service(member.name).stop()
        if needs_snapshot_on_3_6(current, wanted):
            _snapshot_on_current_version(before, member, executable, current, record)
        if current < V2STORE_CHECK_BEFORE <= wanted:
            try:
                _v2store_check(before, member)
            except DcsctlError:
                MemberRuntime(before).start_member(member, executable)  # back as it was
                raise
        installed = after.target.etcd.install(member.name)
        after.target.files.write_config(
            member.name, member_settings(after, member, record, installed.version))
        runtime.start_member(member)
        runtime.wait_healthy(list(after.spec.members))
        _hashes_agree(after)
        moved.append(member.name)
    return tuple(moved)


def roll(before: Cluster, after: Cluster, wanted: Version, record: ClusterRecord, *,
         downgrading: bool = False) -> UpgradeResult:
    """Snapshot, then replace_binaries, then wait for the cluster version (the caller
    holds the cluster lock and read the record)."""
    running = running_versions(before)
    if not downgrading:
        check_upgrade_path(running, wanted)
    provision.refuse_risky(after, {wanted: [m.name for m in after.spec.members]})
    after.target.etcd.prepare_install()  # e.g. a release fetched and checked before any stop
    oldest = min(running.values())
    snapshot = None
    if set(running.values()) != {wanted}:
        snapshot = backup.take(before, record=record).backup.path
        before.context.progress.message(f"snapshot before the change: {snapshot}")
    moved = replace_binaries(before, after, wanted, record)
    version = _wait_cluster_version(after, wanted.line) if moved else ""
    return UpgradeResult(str(oldest), str(wanted), moved, snapshot, version)


# -- what triggers it --

def parse_version(text: str) -> Version:
    try:
        return Version.parse(text)
    except ValueError as exc:
        raise UsageError(f"{text!r} is not an etcd version",
                         fix="name a release such as 3.6.17 (see `dcsctl status`)") from exc


def _changed(desired: Cluster, before: Cluster, wanted: Version, bin_dir: Path | None,
             same: SameVersion) -> Cluster:
    """The cluster as it will run etcd `wanted`: its target says how its spec names it."""
    return desired.context.cluster(before.target.etcd.with_version(desired.spec, wanted,
                                                                   bin_dir, same))


def upgrade(desired: Cluster, before: Cluster, *, to: str, bin_dir: Path | None = None
            ) -> UpgradeResult:
    """`before` is the cluster as it runs; `desired` the spec the caller named (the new
    version is written into it)."""
    wanted = parse_version(to)
    after = _changed(desired, before, wanted, bin_dir, lambda found: found == wanted)
    with locked(before.dir):
        result = roll(before, after, wanted, before.dir.record())
        after.dir.save_spec(after.spec)
    return result


def downgrade(desired: Cluster, before: Cluster, *, to: str, bin_dir: Path | None = None
              ) -> UpgradeResult:
    """etcd's downgrade (3.6+, one minor): validate and enable it, wait until every member
    has migrated its storage, then replace the binaries, leader last."""
    running = running_versions(before)
    current = max(running.values())
    if len(set(running.values())) > 1:
        raise DcsctlError("members run different versions: " + ", ".join(
            f"{n} {v}" for n, v in running.items()),
            fix="finish the change in progress first (`dcsctl upgrade --to` the newest)")
    target_line = ".".join(to.split(".")[:2])
    if problem := downgrade_problem(current, target_line):
        raise DcsctlError(f"refusing to downgrade etcd {current} to {to}: {problem}",
                          fix="downgrade one minor at a time, from etcd 3.6 or newer")
    wanted = parse_version(to if to.count(".") == 2 else f"{to}.0")
    after = _changed(desired, before, wanted, bin_dir,
                     lambda found: found.line == target_line)
    wanted = after.target.etcd.wanted() or wanted  # --to 3.6: whichever 3.6 it names
    provision.refuse_risky(after, {wanted: [m.name for m in after.spec.members]})
    with locked(before.dir):
        record = before.dir.record()
        snapshot = backup.take(before, record=record).backup.path
        before.context.progress.message(f"snapshot before the downgrade: {snapshot}")
        with before.admin_client(timeout=10.0) as client:
            client.downgrade("validate", target_line)
            client.downgrade("enable", target_line)
        _wait_storage_version(before, target_line)
        result = roll(before, after, wanted, record, downgrading=True)
        _wait_downgrade_finished(after)
        after.dir.save_spec(after.spec)
    return UpgradeResult(str(current), str(wanted), result.upgraded, snapshot,
                         result.cluster_version)


def _wait_for_members(cluster: Cluster, fact: Callable[[EndpointStatus], str],
                      done: Callable[[list[str]], bool], what: str) -> None:
    """Poll every member's status until `done` holds for the `fact` each reports (a member
    that does not answer reports its error instead)."""
    seen: list[str] = []

    def reached() -> bool:
        nonlocal seen
        with cluster.admin_client() as client:
            statuses = client.statuses()
        seen = [fact(s) if isinstance(s, EndpointStatus) else s.message for s in statuses]
        return done(seen)

    wait_until(reached, timeout=cluster.context.deadline(DOWNGRADE_STEP_TIMEOUT_S),
               what=what, last_error=lambda: ", ".join(seen))


def _wait_downgrade_finished(cluster: Cluster) -> None:
    """Once every member runs the older minor, etcd's leader ends the downgrade itself."""
    _wait_for_members(cluster, lambda s: s.downgrade_target, lambda seen: not any(seen),
                      "etcd did not finish the downgrade")


def _wait_storage_version(cluster: Cluster, line: str) -> None:
    """After `downgrade enable` the leader migrates every member's storage to the target
    version; only then may older binaries open the data."""
    _wait_for_members(cluster, lambda s: s.storage_version,
                      lambda seen: all(v.startswith(f"{line}.") for v in seen),
                      f"the members' storage did not migrate to {line}")
