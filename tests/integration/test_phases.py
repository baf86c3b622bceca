"""The phases of the workflows on a real lab cluster: every `done_if` of up, member add,
member remove and restore only observes (the state dir and etcd's revision stay as they
were), and a phase runs alone given what the phases before it would have handed on."""

from __future__ import annotations

import json
from pathlib import Path

from dcsctl.ops import backup, provision, restore_preview
from dcsctl.ops.cluster import Cluster
from dcsctl.ops.lifecycle import UpWorkflow
from dcsctl.ops.members import JoinWorkflow, LeaveWorkflow
from dcsctl.ops.restore import Reconfigured, RestorePlan, RestoreWorkflow
from dcsctl.workflow import UNCHANGED, Handover, Phase
from tests.support import cluster_of
from tests.support.lab import LabCluster

NOTHING_TO_RESTART = Handover(install=provision.Installs(UNCHANGED, frozenset(), (), {}),
                              config=provision.Configured((), frozenset(), {}))


def _observable(cluster: Cluster) -> tuple[dict[str, tuple[bytes, int]], int]:
    """Every file dcsctl keeps in the state dir (content, mtime; not etcd's data dirs or
    logs, which etcd writes on its own) and etcd's revision."""
    data_dirs = [Path(cluster.layout(m.name).data_dir) for m in cluster.spec.members]
    files = {str(p.relative_to(cluster.dir.root)): (p.read_bytes(), p.stat().st_mtime_ns)
             for p in sorted(cluster.dir.root.rglob("*"))
             if p.is_file() and p.suffix != ".log" and p.name != "lock"
             and not any(p.is_relative_to(d) for d in data_dirs)}
    with cluster.admin_client() as client:
        return files, client.revision()


def _pid(cluster: Cluster, member: str) -> int:
    return int(json.loads(cluster.dir.pidfile(member).read_text())["pid"])


def _checks(phases: list[Phase]) -> dict[str, bool]:
    return {p.name: p.done_if() for p in phases if p.done_if is not None}


def test_the_checks_of_every_workflow_only_observe(running_lab: LabCluster) -> None:
    cluster = cluster_of(running_lab)
    try:
        snapshot = backup.take(cluster).backup.path
        preview = restore_preview.preview(cluster, snapshot)
        before = _observable(cluster)
        up = UpWorkflow(cluster, cluster.dir.record(), NOTHING_TO_RESTART)
        first = cluster.spec.members[0]
        join = JoinWorkflow(cluster, first, cluster.dir.record())
        leave = LeaveWorkflow(cluster, first, cluster.dir.record())
        record = cluster.dir.record()
        restore = RestoreWorkflow(
            cluster, cluster, preview, RestorePlan(str(snapshot), "", record.token, 0, False),
            record, keep_old=True,
            handover=Handover(config=Reconfigured(record,
                                                  provision.Configured((), frozenset(), {}))))

        def ask() -> dict[str, dict[str, bool]]:
            return {"up": _checks(up.phases()), "member add": _checks(join.phases()),
                    "member remove": _checks(leave.phases()),
                    "restore": _checks(restore.phases("plan"))}

        checks = ask()
        # ...asked twice: a check that changed something would answer differently
        assert ask() == checks
        assert _observable(cluster) == before
        # A running cluster: every step of up and of adding a member it has is done, none
        # of removing one.
        assert checks == {
            "up": {"pki": True, "start": True, "bootstrap": True, "auth": True},
            "member add": {"pki": True, "add": True, "start": True, "promote": True},
            "member remove": {"remove": False, "revoke": False},
            "restore": {"pki": True, "start": True},
        }
    finally:
        cluster.close()


def test_the_start_phase_runs_alone_and_restarts_what_it_is_handed(
    running_lab: LabCluster,
) -> None:
    cluster = cluster_of(running_lab)
    try:
        member = cluster.spec.members[1].name
        pids = {m.name: _pid(cluster, m.name) for m in cluster.spec.members}
        handed = Handover(install=provision.Installs(UNCHANGED, frozenset({member}), (), {}),
                          config=provision.Configured((), frozenset(), {}))
        start = {p.name: p for p in UpWorkflow(cluster, cluster.dir.record(),
                                                handed).phases()}["start"]
        assert start.done_if is not None and not start.done_if()
        assert start.run() == f"started {member} (restarted)"
        after = {m.name: _pid(cluster, m.name) for m in cluster.spec.members}
        assert [name for name in pids if pids[name] != after[name]] == [member]
    finally:
        cluster.close()
