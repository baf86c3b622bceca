"""`upgrade`: a rolling replacement of the etcd binary, one member at a time.

A snapshot comes first; unsupported paths (downgrades, skipped minors, a minor upgrade
from below the patch release etcd requires) are refused before anything changes. A killed
upgrade is resumed by the same command: members already running the new binary are
left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcsctl import spec as spec_module
from dcsctl.errors import DcsctlError, EnvironmentProblem
from dcsctl.etcd import binaries
from dcsctl.etcd.model import EndpointStatus
from dcsctl.etcd.versions import Version, upgrade_problem
from dcsctl.ops import backup
from dcsctl.ops.context import Cluster
from dcsctl.ops.lifecycle import UpWorkflow, as_saved
from dcsctl.state import locked


@dataclass(frozen=True)
class UpgradeResult:
    from_version: str
    to_version: str
    upgraded: tuple[str, ...]
    snapshot: Path | None


def _running_versions(cluster: Cluster) -> set[Version]:
    with cluster.admin_client() as client:
        statuses = client.statuses()
    down = [m.name for m, s in zip(cluster.spec.members, statuses, strict=True)
            if not isinstance(s, EndpointStatus)]
    if down:
        raise DcsctlError(f"members not answering: {', '.join(down)}",
                          fix="bring every member up (`dcsctl up`) before an upgrade")
    return {Version.parse(s.version) for s in statuses if isinstance(s, EndpointStatus)}


def _runs(cluster: Cluster, member: str, executable: Path) -> bool:
    """True if the member's running process is `executable` (already upgraded)."""
    record = cluster.process(member).record()
    return (record is not None and cluster.process(member).is_active()
            and Path(record.executable) == executable)


def upgrade(cluster: Cluster, *, to: str, bin_dir: Path) -> UpgradeResult:
    cluster = as_saved(cluster)
    if cluster.remote:
        raise DcsctlError(
            "`dcsctl upgrade` replaces local lab binaries; SSH clusters upgrade through the spec",
            fix="take a `dcsctl backup`, point install.tarball and install.sha256 at the new "
            "release, then run `dcsctl up`: it installs it and restarts the members one at "
            "a time",
        )
    wanted = Version.parse(to)
    found = binaries.find(str(bin_dir), cluster.context.environ)
    if found.version != wanted:
        raise EnvironmentProblem(f"{found.etcd} is etcd {found.version}, not {wanted}",
                                 fix=f"point --bin-dir at an etcd {wanted} install")
    versions = _running_versions(cluster)
    oldest = min(versions)
    for current in versions:
        problem = upgrade_problem(current, wanted)
        if problem:
            raise DcsctlError(f"refusing the upgrade: {problem}",
                              fix="choose a supported target version (see etcd's upgrade "
                              "guides)")
    raw = spec_module.digest_source(cluster.spec)
    raw.setdefault("etcd", {})["bin_dir"] = str(bin_dir)
    target = cluster.context.cluster(spec_module.from_mapping(raw, source="the upgraded spec"))
    pending = [m for m in target.spec.members if not _runs(target, m.name, found.etcd)]
    snapshot = None
    if pending and versions != {wanted}:
        snapshot = backup.take(cluster).backup.path
    with locked(target.dir):
        target.dir.save_spec(target.spec)
        workflow = UpWorkflow(target)
        for member in pending:
            target.service(member.name).stop()
            workflow.start_member(member)
            workflow.wait_healthy(list(target.spec.members))
    return UpgradeResult(str(oldest), str(wanted), tuple(m.name for m in pending), snapshot)
