"""The SSH lab is a real OpenSSH: keys, host-key pinning, sftp and stop() all behave for real."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.ssh.sshd import SshLab, start_ssh_lab
from tests.support import poll

# 127.61.0.0/16 is left to the SSH tests; the third octet keeps concurrent runs apart.
HOSTS = {f"node{i}": f"127.61.{os.getpid() % 200}.{10 + i}" for i in range(3)}


def ssh(
    lab: SshLab, alias: str, *argv: str, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run `ssh -F lab.ssh_config [options] alias -- argv`, as dcsctl's SSH hosts would."""
    return subprocess.run(
        ["ssh", "-F", str(lab.ssh_config), *options, alias, "--", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def ssh_lab(ssh_lab_factory: Callable[..., SshLab]) -> SshLab:
    """Three servers, as a three-member cluster would have."""
    return ssh_lab_factory(HOSTS)


def test_every_alias_runs_a_command_as_the_lab_user(ssh_lab: SshLab) -> None:
    for alias in HOSTS:
        done = ssh(ssh_lab, alias, "echo", "hello")
        assert (done.returncode, done.stdout) == (0, "hello\n"), done.stderr
        assert "Accepted publickey for root" in ssh_lab.servers[alias].log.read_text()


def test_an_unknown_host_key_is_refused(ssh_lab: SshLab, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.touch()
    options = ("-o", f"UserKnownHostsFile={empty}", "-o", "StrictHostKeyChecking=yes")
    done = ssh(ssh_lab, "node0", "echo", "hello", options=options)
    assert done.returncode == 255
    assert "Host key verification failed" in done.stderr
    assert done.stdout == ""


def test_every_remote_command_is_recorded_for_audit(ssh_lab: SshLab) -> None:
    ssh(ssh_lab, "node1", "echo", "audited")
    assert "echo audited" in ssh_lab.commands.read_text().splitlines()


def test_an_extra_user_authenticates_although_the_lab_root_is_private(
    ssh_lab_factory: Callable[..., SshLab],
) -> None:
    """`nobody` cannot read pytest's 0700 tmp dirs: the AuthorizedKeysCommand fallback works."""
    lab = ssh_lab_factory({"node0": HOSTS["node0"]}, extra_users=["nobody"])
    done = ssh(lab, "node0", "true", options=("-l", "nobody"))
    # Authenticated; then nobody's shell, /usr/sbin/nologin, refuses to run anything.
    assert "Permission denied" not in done.stderr
    assert "This account is currently not available" in done.stdout
    assert "Accepted publickey for nobody" in lab.servers["node0"].log.read_text()


def test_stop_closes_every_port_and_ends_open_connections(ssh_lab: SshLab) -> None:
    # `cat` on a pipe we hold open: it ends when its session does, so nothing outlives the test
    # (stop() ends sshd's processes, not the commands they started).
    session = subprocess.Popen(
        ["ssh", "-F", str(ssh_lab.ssh_config), "node2", "--", "cat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def session_started() -> bool:
            assert session.poll() is None, "ssh exited before its session started"
            return "Starting session" in ssh_lab.servers["node2"].log.read_text()

        poll(session_started, 10, "a session started")
        ssh_lab.stop()
        assert session.wait(timeout=10) == 255
    finally:
        if session.poll() is None:
            session.kill()
            session.wait(timeout=10)
        assert session.stdin is not None
        session.stdin.close()
    for server in ssh_lab.servers.values():
        assert not Path(f"/proc/{server.pid}").exists()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((server.address, server.port), timeout=2).close()


def test_a_taken_address_fails_with_sshds_reason(
    ssh_lab: SshLab, ssh_lab_factory: Callable[..., SshLab]
) -> None:
    with pytest.raises(RuntimeError, match="Address already in use"):
        ssh_lab_factory({"again": HOSTS["node0"]})


@pytest.mark.parametrize(
    ("hosts", "extra_users", "error"),
    [
        ({"node0": "10.0.0.1"}, (), "not an IPv4 loopback address"),
        ({"node0": "127.61.0.1", "node1": "127.61.0.1"}, (), "share an address"),
        ({"-oProxyCommand": "127.61.0.1"}, (), "host alias"),
        ({"node0": "127.61.0.1"}, ("no-such-user-dcsctl",), "no account"),
    ],
)
def test_inputs_that_would_misbehave_are_refused_before_any_sshd_starts(
    tmp_path: Path, hosts: dict[str, str], extra_users: tuple[str, ...], error: str
) -> None:
    with pytest.raises((ValueError, RuntimeError), match=error):
        start_ssh_lab(tmp_path / "lab", hosts, extra_users=extra_users)
    assert not (tmp_path / "lab").exists()
