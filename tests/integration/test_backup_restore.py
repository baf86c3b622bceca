"""Backup and disaster recovery against real clusters."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dcsctl.ops.backup import PROGRESS_EVERY_S, take
from dcsctl.ops.cluster import Context
from dcsctl.spec import parse
from dcsctl.workflow import SilentProgress
from tests.integration.writer import BackgroundWriter
from tests.support import cluster_of, is_gone, poll
from tests.support.lab import REPO, LabCluster
from tests.support.reads import RecordReads


def _admin(lab: LabCluster):  # type: ignore[no-untyped-def]
    cluster = cluster_of(lab)
    return cluster.admin_client()


def _backup(lab: LabCluster, *extra: str) -> Path:
    result = lab.ok("backup", "--json", *extra).json()
    return Path(str(result["path"]))


@pytest.fixture
def seeded(lab: LabCluster) -> LabCluster:
    lab.ok("up")
    for index in range(20):
        lab.ok("put", f"/service/demo/members/db-{index:02d}", f"member-{index}")
    with _admin(lab) as client:
        client.role_add("patroni-demo")
        client.role_grant("patroni-demo", "/service/demo/", "readwrite")
        client.user_add("patroni-demo", "a-long-test-password-123")
        client.user_grant_role("patroni-demo", "patroni-demo")
    return lab


def test_round_trip_restores_data_users_and_roles(seeded: LabCluster,
                                                  record_reads: RecordReads) -> None:
    before_id = seeded.ok("status", "--json").json()["cluster_id"]
    snapshot = _backup(seeded)
    manifest = snapshot.with_suffix(".json")
    assert manifest.exists() and oct(snapshot.stat().st_mode & 0o777) == "0o600"
    seeded.ok("put", "/service/demo/leader", "written-after-backup")
    seeded.ok("put", "/service/demo/members/db-00", "changed-after-backup")

    record_reads.take()
    seeded.ok("restore", str(snapshot), "--yes")
    assert record_reads.take() == 1  # the preview's read, handed down to every phase

    assert seeded.ok("get", "/service/demo/members/db-00").out == "member-0\n"
    assert seeded.dcsctl("get", "/service/demo/leader").code != 0  # did not exist then
    view = seeded.ok("status", "--json").json()
    assert view["healthy"] is True and view["cluster_id"] != before_id
    with _admin(seeded) as client:
        assert "patroni-demo" in client.user_roles()
        assert "patroni-demo" in client.role_names()
        assert client.auth_enabled()
    assert not list(seeded.state.glob("members/*/data.pre-restore"))
    assert not (seeded.state / "restore.json").exists()


def test_truncated_and_corrupted_snapshots_are_refused(
    seeded: LabCluster, tmp_path: Path
) -> None:
    snapshot = _backup(seeded)
    data = snapshot.read_bytes()
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(data[: len(data) // 2])
    corrupted = tmp_path / "corrupted.db"
    corrupted.write_bytes(data[:4096] + bytes([data[4096] ^ 0xFF]) + data[4097:])
    for bad in (truncated, corrupted):
        result = seeded.dcsctl("restore", str(bad), "--yes")
        assert result.code == 1, result.err
        assert "truncated or corrupted" in result.err and "fix:" in result.err
        assert seeded.dcsctl("backup", "verify", str(bad)).code == 1
    # Refused before anything was touched: the cluster still serves its data.
    assert seeded.ok("get", "/service/demo/members/db-03").out == "member-3\n"
    assert seeded.ok("backup", "verify", str(snapshot)).out.startswith("OK")


@pytest.mark.parametrize("kill_after", ["[stop]", "[data]"])
def test_killed_restore_is_finished_by_running_it_again(
    seeded: LabCluster, kill_after: str
) -> None:
    snapshot = _backup(seeded)
    seeded.ok("put", "/service/demo/members/db-01", "changed-after-backup")
    argv = [sys.executable, "-m", "dcsctl", "restore", str(snapshot), "--yes",
            "-f", str(seeded.spec_file)]
    process = subprocess.Popen(argv, env=seeded.environ, stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True, cwd=REPO)
    assert process.stderr is not None
    for line in process.stderr:
        if kill_after in line:
            process.send_signal(signal.SIGKILL)
            break
    assert process.wait(timeout=60) == -signal.SIGKILL
    assert (seeded.state / "restore.json").exists()

    again = seeded.ok("restore", str(snapshot), "--yes")
    assert "resuming" in again.err
    assert seeded.ok("get", "/service/demo/members/db-01").out == "member-1\n"
    assert seeded.ok("status", "--json").json()["healthy"] is True


def test_restore_into_a_new_spec_rebuilds_the_cluster_elsewhere(
    seeded: LabCluster, lab_factory: Callable[..., LabCluster]
) -> None:
    snapshot = _backup(seeded)
    elsewhere = lab_factory(members=3)
    elsewhere.ok("restore", str(snapshot), "--yes", "--from-other-cluster")
    assert elsewhere.ok("get", "/service/demo/members/db-07").out == "member-7\n"
    assert elsewhere.ok("status", "--json").json()["healthy"] is True
    assert seeded.ok("status", "--json").json()["healthy"] is True  # untouched


def test_retention_keeps_the_newest(seeded: LabCluster) -> None:
    made = [_backup(seeded, "--keep", "2") for _ in range(3)]
    listed = seeded.ok("backup", "list", "--json").out
    assert made[0].name not in listed
    assert made[1].name in listed and made[2].name in listed


def test_backup_works_with_one_member_down(seeded: LabCluster) -> None:
    view = seeded.ok("status", "--json").json()
    members = view["members"]
    assert isinstance(members, list)
    os.kill(members[0]["pid"], signal.SIGKILL)
    poll(lambda: is_gone(members[0]["pid"]) or None, 10, "the killed member did not exit")
    result = seeded.ok("backup", "--json").json()
    assert result["manifest"]["member"] != members[0]["name"]  # type: ignore[index]


def test_backup_without_quorum_is_a_clear_error(seeded: LabCluster) -> None:
    members = seeded.ok("status", "--json").json()["members"]
    assert isinstance(members, list)
    for member in members[:2]:
        os.kill(member["pid"], signal.SIGKILL)
    result = seeded.dcsctl("backup")
    assert result.code == 5
    assert "quorum lost" in result.err and "fix:" in result.err


def test_bump_revision_keeps_watchers_from_seeing_time_go_backwards(seeded: LabCluster) -> None:
    snapshot = _backup(seeded)
    revision_at_backup = json.loads(snapshot.with_suffix(".json").read_text())["revision"]
    for index in range(5):
        seeded.ok("put", f"/after/{index}", "x")  # history the restore will drop
    with _admin(seeded) as client:
        revision_before_restore = client.revision()
    refused = seeded.dcsctl("restore", str(snapshot), "--yes", "--mark-compacted")
    assert refused.code == 1 and "--bump-revision" in refused.err
    seeded.ok("restore", str(snapshot), "--yes", "--bump-revision", "1000", "--mark-compacted")
    with _admin(seeded) as client:
        revision = client.revision()
    assert revision >= revision_at_backup + 1000 > revision_before_restore
    assert seeded.ok("get", "/service/demo/members/db-02").out == "member-2\n"


def test_key_count_is_taken_at_the_snapshots_revision_even_under_writes(
    seeded: LabCluster,
) -> None:
    """The count is asked while etcdutl runs, at the revision seen before the stream; with
    writes meanwhile the snapshot holds a later one and the count must follow it."""
    with BackgroundWriter(seeded, max_seconds=60) as writer:
        writer.wait_acked(20)
        snapshots = []
        for _ in range(3):
            snapshots.append(_backup(seeded))
            writer.wait_acked(5)  # writes after each backup: the next one sees them
    with _admin(seeded) as client:
        for snapshot in snapshots:
            manifest = json.loads(snapshot.with_suffix(".json").read_text())
            assert manifest["key_count"] == client.count_keys(revision=manifest["revision"])
            assert seeded.ok("backup", "verify", str(snapshot)).out.startswith("OK")
    revisions = [json.loads(s.with_suffix(".json").read_text())["revision"] for s in snapshots]
    assert revisions == sorted(set(revisions))  # each one saw the writes after the last


class _Recorder(SilentProgress):
    def __init__(self) -> None:
        self.transfers: list[tuple[int, int | None]] = []
        self.times: list[float] = []

    def transfer(self, label: str, done: int, total: int | None) -> None:
        self.transfers.append((done, total))
        self.times.append(time.monotonic())


def test_progress_is_reported_a_few_times_a_second_and_at_the_end(seeded: LabCluster) -> None:
    for index in range(300):  # a snapshot of many chunks (etcd sends 32 KiB each)
        seeded.ok("put", f"/bulk/{index:04d}", "v" * 4096)
    recorder = _Recorder()
    context = Context(seeded.environ, progress=recorder)
    result = take(context.cluster(parse(seeded.spec_file.read_text())))
    size = result.backup.manifest.db_size  # the stream's bytes, as written to the file
    chunks = -(-size // 32768)
    assert chunks > 10
    assert recorder.transfers[-1] == (size, size)  # the final count, which ends the bar
    # Throttled by time, not by chunk: the reports before the final one are at least
    # PROGRESS_EVERY_S apart (however long a busy machine made the stream), and the
    # stream's chunks outnumber them.
    during = recorder.times[:-1]
    assert all(b - a >= PROGRESS_EVERY_S for a, b in itertools.pairwise(during)), during
    assert len(recorder.transfers) < chunks
