"""What a restore would replace with what, and whether it may: decided before anything is
touched.

A snapshot is restored here only if its manifest proves it is this cluster's: signed with
this cluster's manifest key, under this cluster's name and one of the cluster IDs it has
had. Another cluster's snapshot needs `--from-other-cluster`; one without a manifest (or
with an unsigned one) needs `--without-manifest`. A tampered manifest is refused by
`backup.verify` whatever the flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcsctl import snapshots
from dcsctl.errors import DcsctlError, EnvironmentProblem
from dcsctl.ops.backup import Verified, verify
from dcsctl.ops.cluster import Cluster
from dcsctl.snapshots import Authenticity

# How long the preview waits for the running cluster: a restore is often run because it
# is down, and then "unreachable" is the answer, not a reason to wait.
SURVEY_TIMEOUT_S = 3.0


class ForeignSnapshot(EnvironmentProblem):
    """A snapshot that may not be this cluster's: restoring it needs the user's word."""


@dataclass(frozen=True)
class Side:
    """One side of a restore: the cluster now, or the snapshot. None: not known."""

    cluster: str | None
    cluster_id: str | None
    revision: int | None
    key_count: int | None
    users: tuple[str, ...] | None
    taken_at: str | None = None
    note: str = ""  # why something is unknown, or what is special


@dataclass(frozen=True)
class RestorePreview:
    """What a restore would replace with what, decided before anything is touched."""

    verified: Verified
    now: Side
    snapshot: Side
    foreign: tuple[str, ...]  # why the snapshot is another cluster's (accepted by the user)
    trusts_manifest: bool  # False: checks use the snapshot alone (--without-manifest)


def _now(cluster: Cluster) -> Side:
    """The cluster as it is, as far as it answers within SURVEY_TIMEOUT_S."""
    directory = cluster.dir
    name = cluster.spec.name
    if not directory.exists():
        return Side(name, None, None, None, None, note="no such cluster yet: nothing replaced")
    cluster_id = directory.record().cluster_id
    if (directory.root / "restore.json").exists():
        return Side(name, cluster_id, None, None, None,
                    note="an interrupted restore is unfinished: this run resumes it")
    try:
        with cluster.admin_client(timeout=SURVEY_TIMEOUT_S) as client:
            return Side(name, cluster_id, client.revision(), client.count_keys(),
                        tuple(sorted(client.user_roles())))
    except DcsctlError as exc:
        return Side(name, cluster_id, None, None, None, note=f"unreachable ({exc.message})")


def _refuse_unless_allowed(
    cluster: Cluster, verified: Verified, *, from_other_cluster: bool, without_manifest: bool,
) -> tuple[str, ...]:
    """Refuse a snapshot that may not be this cluster's unless the user said so; return why
    it is another cluster's (accepted) so the preview can say it."""
    manifest, signature = verified.manifest, verified.signature
    if (manifest is None or signature is Authenticity.UNSIGNED) and not without_manifest:
        what = ("has no manifest beside it" if manifest is None
                else f"has a manifest that is {Authenticity.UNSIGNED.value}")
        raise ForeignSnapshot(
            f"{verified.path} {what}: nothing proves it is a backup of "
            f"{cluster.spec.name!r}, and the restore could not be checked against it",
            fix="restore one of `dcsctl backup list`; if you know where this snapshot comes "
            "from, pass --without-manifest (etcd's own hash is still checked)",
        )
    if manifest is None or signature is None:
        return ()
    record = cluster.dir.record() if cluster.dir.exists() else None
    reasons = snapshots.foreign_reasons(
        manifest, signature, cluster=cluster.spec.name,
        cluster_ids=record.cluster_ids() if record else (),
    )
    if reasons and not from_other_cluster:
        raise ForeignSnapshot(
            f"{verified.path} is not a backup of this cluster: {'; '.join(reasons)}",
            fix="restore one of `dcsctl backup list`; to replace this cluster's data with "
            "another cluster's on purpose, pass --from-other-cluster",
        )
    return reasons


def preview(
    cluster: Cluster, snapshot: Path, *, from_other_cluster: bool = False,
    without_manifest: bool = False,
) -> RestorePreview:
    """Verify the snapshot, decide whether it may be restored here, and describe both
    sides. Touches nothing."""
    verified = verify(cluster, snapshot)
    foreign = _refuse_unless_allowed(cluster, verified, from_other_cluster=from_other_cluster,
                                     without_manifest=without_manifest)
    manifest = verified.manifest
    trusts_manifest = manifest is not None and verified.signature is not Authenticity.UNSIGNED
    if manifest is not None and trusts_manifest:
        side = Side(manifest.cluster, manifest.cluster_id or None, verified.facts.revision,
                    manifest.key_count, manifest.users, taken_at=manifest.taken_at,
                    note=f"manifest {verified.signature.value if verified.signature else ''}")
    else:
        side = Side(manifest.cluster if manifest else None, None, verified.facts.revision,
                    None, None, note="no trusted manifest: only etcd's own hash was checked")
    return RestorePreview(verified, _now(cluster), side, foreign, trusts_manifest)
