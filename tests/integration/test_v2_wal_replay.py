"""Does an etcd 3.7 start on a data dir that 3.5 founded and 3.6 ran, with no raft snapshot
in between? etcd 3.7.0-3.7.3 panic replaying the v2 requests 3.5 wrote to the WAL; 3.7.4
skips them. `dcsctl upgrade` forces a snapshot on 3.6 only for the targets that need it
(versions.needs_snapshot_on_3_6): this test is the evidence for that table, both ways.

The members here are bare etcd processes on one loopback address (plain HTTP: the
question is etcd's storage, not dcsctl's TLS); each is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dcsctl.etcd.versions import Version, needs_snapshot_on_3_6
from tests.support import poll
from tests.support.lab import etcd_bin_dir, free_loopback_address

FOUNDER, MIDDLE = Version(3, 5, 36), Version(3, 6, 17)
PANICS, FIXED = Version(3, 7, 3), Version(3, 7, 4)


class BareEtcd:
    def __init__(self, version: Version, data_dir: Path, address: str, log: Path) -> None:
        self.bin_dir = etcd_bin_dir(version)
        self.client = f"http://{address}:2379"
        peer = f"http://{address}:2380"
        self.log = log
        with log.open("w") as sink:
            self.process = subprocess.Popen(
                [str(self.bin_dir / "etcd"), "--name", "n1", "--data-dir", str(data_dir),
                 "--listen-client-urls", self.client, "--advertise-client-urls", self.client,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"n1={peer}", "--snapshot-count", "10000"],
                stdout=sink, stderr=subprocess.STDOUT)

    def healthy(self) -> bool | None:
        """True once /health says so; None while starting; False once etcd has exited."""
        if self.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{self.client}/health", timeout=1) as answer:
                return b'"true"' in answer.read() or None
        except OSError:
            return None

    def outcome(self) -> bool:
        """Did it come up (True) or exit (False)?"""
        def settled() -> str | None:
            state = self.healthy()
            return None if state is None else ("up" if state else "exited")

        return poll(settled, timeout=30, what="etcd neither became healthy nor exited") == "up"

    def etcdctl(self, *argv: str) -> str:
        return subprocess.run([str(self.bin_dir / "etcdctl"), "--endpoints", self.client,
                               *argv], capture_output=True, text=True, check=True,
                              timeout=30).stdout

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def running(version: Version, data_dir: Path, address: str, log: Path) -> Iterator[BareEtcd]:
    member = BareEtcd(version, data_dir, address, log)
    try:
        yield member
    finally:
        member.stop()


@pytest.fixture
def founded_on_3_5_ran_on_3_6(tmp_path: Path) -> tuple[Path, str]:
    """A data dir 3.5 founded (v2 requests in its WAL) and 3.6 ran; no raft snapshot since."""
    address = free_loopback_address()
    data = tmp_path / "data"
    with running(FOUNDER, data, address, tmp_path / "founder.log") as founder:
        assert founder.outcome()
        founder.etcdctl("put", "written-by", "3.5")
    with running(MIDDLE, data, address, tmp_path / "middle.log") as middle:
        assert middle.outcome()
        middle.etcdctl("put", "then-by", "3.6")
    assert not list((data / "member" / "snap").glob("*.snap")), "a raft snapshot was taken"
    return data, address


@pytest.mark.parametrize(("version", "starts"), [(PANICS, False), (FIXED, True)])
def test_3_7_on_a_wal_3_5_wrote_without_a_snapshot(
        founded_on_3_5_ran_on_3_6: tuple[Path, str], tmp_path: Path, version: Version,
        starts: bool) -> None:
    founded, address = founded_on_3_5_ran_on_3_6
    data = tmp_path / f"data-{version}"
    shutil.copytree(founded, data)
    log = tmp_path / f"{version}.log"
    with running(version, data, address, log) as member:
        came_up = member.outcome()
        if came_up:
            assert member.etcdctl("get", "--print-value-only", "written-by").strip() == "3.5"
            assert member.etcdctl("get", "--print-value-only", "then-by").strip() == "3.6"
    assert came_up is starts, log.read_text()[-2000:]
    if not starts:
        assert "unmarshal should never fail" in log.read_text()
    # dcsctl's table agrees with what etcd just did
    assert needs_snapshot_on_3_6(MIDDLE, version) is (not starts)
