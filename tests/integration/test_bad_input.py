"""Bad input: a clear error naming cause and fix, exit code != 0, nothing half-written."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.support.lab import REPO, VENV_BIN, LabCluster, run_cli


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err


def test_broken_spec_reports_every_problem_and_writes_nothing(
    lab: LabCluster, tmp_path: Path
) -> None:
    document = lab.document()
    document["etcd"] = {"heartbeat": 100}
    members = document["members"]
    assert isinstance(members, list)
    members[1]["name"] = "Bad_Name"
    members[2]["address"] = "127.0.0.300"
    lab.spec_file.write_text(yaml.safe_dump(document))
    result = lab.dcsctl("up")
    assert result.code == 3
    for path in ("etcd.heartbeat", "members[1].name", "members[2].address"):
        assert path in result.err
    assert "fix:" in result.err
    _no_traceback(result.err)
    assert not lab.home.exists() or not any(lab.home.iterdir())


def test_busy_port_is_named_with_its_owner(lab: LabCluster) -> None:
    address = lab.addresses()[0]
    with socket.socket() as squatter:
        squatter.bind((address, 2379))
        squatter.listen()
        result = lab.dcsctl("up")
    assert result.code == 4
    assert f"{address}:2379" in result.err
    assert f"(pid {os.getpid()})" in result.err
    assert not (lab.state / "cluster.json").exists()


def test_missing_etcd_binary_says_where_it_looked(lab: LabCluster, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    lab.environ["DCSCTL_ETCD_BIN_DIR"] = str(empty)
    result = lab.dcsctl("up")
    assert result.code == 4
    assert "DCSCTL_ETCD_BIN_DIR" in result.err and str(empty) in result.err
    _no_traceback(result.err)


def _fake_etcd(directory: Path, version: str, behaviour: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for tool in ("etcd", "etcdctl"):
        script = directory / tool
        script.write_text(
            "#!/bin/sh\n"
            f'if [ "$1" = "--version" ]; then echo "etcd Version: {version}"; exit 0; fi\n'
            f"{behaviour}\n"
        )
        script.chmod(0o755)
    return directory


def test_too_old_etcd_is_refused(lab: LabCluster, tmp_path: Path) -> None:
    lab.environ["DCSCTL_ETCD_BIN_DIR"] = str(_fake_etcd(tmp_path / "old", "3.3.27", "exit 1"))
    result = lab.dcsctl("up")
    assert result.code == 4
    assert "3.3.27" in result.err and "older than 3.4" in result.err


def test_member_that_dies_at_start_shows_its_log(lab: LabCluster, tmp_path: Path) -> None:
    behaviour = 'echo "fatal: simulated start-up failure of $ETCD_NAME" >&2; exit 1'
    lab.environ["DCSCTL_ETCD_BIN_DIR"] = str(_fake_etcd(tmp_path / "bad", "3.5.36", behaviour))
    result = lab.dcsctl("up")
    assert result.code == 5
    assert "simulated start-up failure" in result.err
    assert "dcsctl logs" in result.err


def test_member_that_never_gets_healthy_times_out_with_a_deadline(
    lab: LabCluster, tmp_path: Path
) -> None:
    behaviour = 'echo "waiting forever" >&2; exec sleep 60'
    lab.environ["DCSCTL_ETCD_BIN_DIR"] = str(_fake_etcd(tmp_path / "hang", "3.5.36", behaviour))
    lab.environ["DCSCTL_TIMEOUT_SCALE"] = "0.1"
    result = lab.dcsctl("up")
    assert result.code == 5
    assert "did not become healthy within 3 s" in result.err
    assert "waiting forever" in result.err
    lab.environ["DCSCTL_ETCD_BIN_DIR"] = str(VENV_BIN)  # teardown stops the sleeps by PID


def test_state_dir_of_another_cluster_is_refused(
    lab_factory: Callable[..., LabCluster],
) -> None:
    first = lab_factory(members=1, name="shared")
    first.ok("up")
    other = lab_factory(members=1, name="shared")
    other.home.mkdir(exist_ok=True)
    result = run_cli(["up", "-f", str(other.spec_file)], first.environ)
    assert result.code == 4
    assert "holds another cluster" in result.err
    assert first.ok("status", "--json").json()["healthy"] is True


def test_interrupted_up_is_finished_by_running_it_again(any_cluster: LabCluster) -> None:
    cluster = any_cluster  # the lab's processes and real sshd hosts alike
    process = subprocess.Popen(
        [str(VENV_BIN / "dcsctl"), "up", "-f", str(cluster.spec_file)],
        env=cluster.environ, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    seen = []
    deadline = time.monotonic() + 180
    try:
        for line in process.stderr:  # ends when dcsctl exits
            seen.append(line)
            if "[start]" in line and "start members —" in line:
                process.send_signal(signal.SIGKILL)  # members started, auth not yet on
                break
            assert time.monotonic() < deadline, "".join(seen)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "".join(seen)
    result = cluster.ok("up", "--json")
    assert "[install]" in result.err and result.json()["cluster_id"]
    assert cluster.ok("status", "--json").json()["healthy"] is True
    assert "no changes" in cluster.ok("up").err


def test_a_member_the_spec_does_not_list_is_refused_with_the_members_named(
    running_lab: LabCluster,
) -> None:
    def members() -> list[object]:
        listed = running_lab.ok("status", "--json").json()["members"]
        assert isinstance(listed, list)
        return sorted(m["name"] for m in listed)

    before = members()
    for argv in (("logs", "nosuch"), ("member", "remove", "nosuch", "--yes"),
                 ("member", "replace", "nosuch", "--yes")):
        result = running_lab.dcsctl(*argv)
        assert result.code == 1, (argv, result.err)
        assert f"error: no member 'nosuch' in cluster '{running_lab.name}'" in result.err
        assert "fix: name one of its members: " + ", ".join(running_lab.names()) in result.err
        _no_traceback(result.err)
    assert members() == before == sorted(running_lab.names())
