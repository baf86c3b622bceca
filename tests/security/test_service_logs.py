"""Starting a member never writes, creates or chowns through a link planted at its log."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePath

import pytest

from dcsctl.errors import DcsctlError, EnvironmentProblem
from dcsctl.hosts.local import LocalHost
from dcsctl.services.process import ProcessService
from dcsctl.services.remote import RemoteProcessService
from dcsctl.wait import wait_until

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the remote start script runs as root")
SERVICE_USER = "daemon"  # has a group of its own name, as setpriv --regid needs


@pytest.fixture
def host_root() -> Iterator[Path]:
    # Outside pytest's 0700 tmp dirs: the service user must reach the stand-in binary.
    root = Path(tempfile.mkdtemp(prefix="dcsctl-log-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _victim(root: Path) -> Path:
    victim = root / "victim"  # stands for /etc/shadow: root's, not the service user's
    victim.write_text("precious\n")
    victim.chmod(0o600)
    return victim


@as_root
def test_remote_start_refuses_a_link_at_the_log_and_chowns_nothing(host_root: Path) -> None:
    victim = _victim(host_root)
    log = host_root / "var" / "log" / "etcd.log"
    log.parent.mkdir(parents=True)
    log.symlink_to(victim)
    service = RemoteProcessService(LocalHost(), host_root / "run" / "etcd.pid", log,
                                   SERVICE_USER)
    with pytest.raises(DcsctlError, match="symbolic link"):
        service.start(PurePath("/bin/true"), {})
    info = victim.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600)
    assert victim.read_text() == "precious\n"


@as_root
def test_remote_start_creates_the_log_as_the_service_users(host_root: Path) -> None:
    stand_in = host_root / "etcd"
    stand_in.write_text("#!/bin/sh\nid -un\nexec sleep 60\n")
    stand_in.chmod(0o755)
    log = host_root / "var" / "log" / "etcd.log"
    service = RemoteProcessService(LocalHost(), host_root / "run" / "etcd.pid", log,
                                   SERVICE_USER)
    assert service.start(stand_in, {"ETCD_NAME": "x"})
    try:
        wait_until(lambda: log.exists() and log.read_text() != "", timeout=10,
                   what="the stand-in did not write its log")
        info = log.stat()
        assert info.st_uid == pwd.getpwnam(SERVICE_USER).pw_uid
        assert stat.S_IMODE(info.st_mode) == 0o640
        assert log.read_text().strip() == SERVICE_USER  # written by the user, not by root
    finally:
        assert service.stop(timeout=5)


def test_lab_start_refuses_a_link_at_the_log(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    log = tmp_path / "etcd.log"
    log.symlink_to(victim)
    service = ProcessService(tmp_path / "etcd.pid", log)
    with pytest.raises(EnvironmentProblem, match="symbolic link"):
        service.start(PurePath("/bin/true"), {})
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "etcd.pid").exists()
