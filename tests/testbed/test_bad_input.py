"""Bad input on the guide's hosts, for real: a host without systemd, a host whose clock is
off, sudo wanting a password, a changed SSH host key, a full data filesystem. Each is one
host's fault, made on that host and taken back in a `finally`; dcsctl must answer with an
`error:` naming the host and a `fix:`, exit non-zero, write nothing anywhere, and succeed
once the cause is gone.

How each fault is made (the containers share this machine's kernel, so some faults are
made in the host's userland, and say so):
- no systemd: the host is started with sshd as its PID 1 instead of systemd;
- clock off: the kernel's clock is shared, so the skew lives in the host's userland:
  Debian's libfaketime (in every testbed host, inert until asked for) is preloaded into
  every process of an SSH session (sshd's `SetEnv`) and every command sudo runs
  (sudoers `env_file`), with FAKETIME=+300 — dcsctl's own view of the host's clock, which
  it only ever reads through SSH and sudo, is five minutes ahead;
- sudo wanting a password: the admin user's sudoers line loses NOPASSWD;
- changed host key: the host's key is regenerated and sshd restarted;
- full data filesystem: a 16 MiB tmpfs, filled, mounted over /var/lib/etcd of a
  follower, whose etcd then fails to start for want of space (etcd's own words).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.testbed.bed import Testbed
from tests.testbed.deployment import (
    Deployment,
    hashes_equal,
    make_deployment,
    status_of,
)

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
SKEW_S = 300
# Everything a refused `up` could have written on a host, with sizes and times; read from
# inside the host (not over SSH and sudo, which some of the faults break).
WRITTEN = ("find /etc/dcs /etc/default/etcd /etc/systemd/system/etcd.service "
           "-printf '%p %s %T@\\n' 2>/dev/null | sort; "
           "find /var/lib/etcd -maxdepth 0 -printf '%p %T@\\n' 2>/dev/null; "
           "sha256sum /etc/hosts; dpkg-query -W -f='${Status}' etcd-server 2>/dev/null; echo")


def _written(testbed: Testbed) -> dict[str, str]:
    return {host: testbed.enter(host, "sh", "-c", WRITTEN, check=False).stdout
            for host in testbed.hosts()}


def _refused(d: Deployment, command: str, host: str, *says: str) -> str:
    """`dcsctl COMMAND` fails with exit 4, an error naming the host and each of `says`, a
    fix, no traceback; returns its stderr. A hang would fail on bed.run's timeout."""
    result = d.dcsctl(command, check=False, timeout=90)
    assert result.returncode == 4, (result.returncode, result.stdout, result.stderr)
    error = result.stderr
    assert "error: " in error and "fix: " in error and "Traceback" not in error, error
    assert host in error.split("fix: ")[0], error
    for words in says:
        assert words in error, (words, error)
    return error


def _checks(d: Deployment, *, ok: bool) -> dict[tuple[str, str], dict[str, str]]:
    result = d.dcsctl("preflight", "--json", check=False)
    assert result.returncode == (0 if ok else 4), (result.stdout, result.stderr)
    return {(c["member"], c["check"]): c for c in json.loads(result.stdout)["checks"]}


def _sshd_reload(testbed: Testbed, host: str) -> None:
    testbed.enter(host, "systemctl", "reload", "ssh")


@contextmanager
def _files(testbed: Testbed, host: str, files: dict[str, str], mode: int = 0o644
           ) -> Iterator[None]:
    """Files written into the host's root filesystem from outside, removed at the end."""
    paths = [testbed.root_path(host, name) for name in files]
    try:
        for path, content in zip(paths, files.values(), strict=True):
            path.write_text(content)
            path.chmod(mode)
        yield
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def test_a_host_without_systemd_is_refused_for_service_systemd(
        testbed: Testbed, tmp_path: Path) -> None:
    d = make_deployment(testbed, tmp_path)
    before = _written(testbed)
    try:
        testbed.boot_without_systemd("dcs-02")
        assert testbed.ssh("dcs-02", "cat /proc/1/comm").stdout.strip() == "sshd"
        checks = _checks(d, ok=False)
        assert checks[("dcs-02", "init")]["verdict"] == "fail"
        assert "PID 1 is sshd, not systemd" in checks[("dcs-02", "init")]["detail"]
        assert checks[("dcs-00", "init")]["verdict"] == "ok"
        _refused(d, "up", "dcs-02", "dcs-02 init: PID 1 is sshd, not systemd",
                 "service: {manager: process}")
        assert _written(testbed) == before
        assert not (d.home / "dcs").exists()  # not even the state dir
    finally:
        testbed.kill("dcs-02")
        testbed.boot("dcs-02")
    assert _written(testbed) == before
    assert _checks(d, ok=True)[("dcs-02", "init")]["verdict"] == "ok"


def test_a_host_whose_clock_is_off_is_refused_with_the_measured_offset(
        testbed: Testbed, tmp_path: Path) -> None:
    d = make_deployment(testbed, tmp_path)
    before = _written(testbed)
    skew = {
        "/etc/ssh/sshd_config.d/zz-faketime.conf":
            f"SetEnv LD_PRELOAD={FAKETIME_LIB} FAKETIME=+{SKEW_S}\n",
        "/etc/faketime.env": f"LD_PRELOAD={FAKETIME_LIB}\nFAKETIME=+{SKEW_S}\n",
    }
    sudoers = {"/etc/sudoers.d/zz-faketime": "Defaults env_file=/etc/faketime.env\n"}
    try:
        with _files(testbed, "dcs-01", skew), _files(testbed, "dcs-01", sudoers, 0o440):
            _sshd_reload(testbed, "dcs-01")
            # positive control: the host's commands, with and without sudo, see the skew
            seen = testbed.ssh("dcs-01", "date +%s; sudo -n date +%s").stdout.split()
            local = int(testbed.run(["date", "+%s"]).stdout)
            assert all(abs(int(t) - local - SKEW_S) < 10 for t in seen), (seen, local)
            clock = _checks(d, ok=False)[("dcs-01", "clock")]
            assert clock["verdict"] == "fail"
            offset = int(re.search(r"([+-]\d+) ms against", clock["detail"])[1])  # type: ignore[index]
            assert abs(offset - SKEW_S * 1000) < 10_000, clock
            _refused(d, "up", "dcs-01", "dcs-01 clock: clock +", "ms against this machine",
                     "chrony")
            assert _written(testbed) == before
    finally:
        _sshd_reload(testbed, "dcs-01")
    clock = _checks(d, ok=True)[("dcs-01", "clock")]
    assert clock["verdict"] == "ok", clock


def test_sudo_wanting_a_password_is_a_clear_error_not_a_hang(
        testbed: Testbed, tmp_path: Path) -> None:
    d = make_deployment(testbed, tmp_path)
    before = _written(testbed)
    sudoers = testbed.root_path("dcs-01", "/etc/sudoers.d/admin")
    original = sudoers.read_text()
    try:
        sudoers.write_text("admin ALL=(ALL) ALL\n")  # the same rights, but a password
        assert testbed.ssh("dcs-01", "sudo -n true", check=False).returncode != 0
        _refused(d, "up", "dcs-01", "sudo on dcs-01 is not usable without a password",
                 "a password is required", "passwordless sudo")
        assert _written(testbed) == before
    finally:
        sudoers.write_text(original)
    assert _written(testbed) == before
    assert _checks(d, ok=True)[("dcs-01", "ssh")]["verdict"] == "ok"


def test_a_changed_host_key_is_refused_and_accepted_the_way_the_fix_says(
        testbed: Testbed, tmp_path: Path) -> None:
    d = make_deployment(testbed, tmp_path)
    known_hosts = tmp_path / "known_hosts"  # the spec's own copy: the fix edits it
    shutil.copy(testbed.known_hosts, known_hosts)
    d.spec_file.write_text(d.spec_file.read_text().replace(
        f"known_hosts_file: {testbed.known_hosts}", f"known_hosts_file: {known_hosts}"))
    before = _written(testbed)
    key = testbed.root_path("dcs-00", "/etc/ssh/ssh_host_ed25519_key")
    saved = {p: p.read_bytes() for p in (key, key.with_suffix(".pub"))}
    try:
        key.unlink()
        key.with_suffix(".pub").unlink()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "new",
                        "-f", str(key)], check=True, timeout=30)
        new_fingerprint = subprocess.run(
            ["ssh-keygen", "-lf", str(key.with_suffix(".pub"))], check=True, text=True,
            capture_output=True, timeout=30).stdout.split()[1]
        testbed.enter("dcs-00", "systemctl", "restart", "ssh")
        error = _refused(d, "up", "dcs-00", "the SSH host key of dcs-00 has changed",
                         new_fingerprint, f"ssh-keygen -R dcs-00 -f {known_hosts}")
        assert known_hosts.read_text() == testbed.known_hosts.read_text()
        assert _written(testbed) == before
        # The operator's side: the fingerprint was compared above; run the fix's commands.
        commands = re.findall(r"`(ssh-(?:keygen -R|keyscan)[^`]*)`", error)
        assert len(commands) == 2, error
        for command in commands:
            testbed.run(["sh", "-c", command])
        checks = _checks(d, ok=True)
        assert checks[("dcs-00", "ssh")]["verdict"] == "ok"
    finally:
        for path, content in saved.items():
            path.write_bytes(content)
        testbed.enter("dcs-00", "systemctl", "restart", "ssh")
    testbed.ssh("dcs-00", "true")  # the testbed's own known_hosts holds again


def test_a_full_data_filesystem_on_one_host_is_named_and_loses_nothing_elsewhere(
        testbed: Testbed, tmp_path: Path) -> None:
    d = make_deployment(testbed, tmp_path)
    up = d.dcsctl("up").stdout
    try:
        leader = re.search(r"3/3 members healthy, leader (dcs-\d+)", up)[1]  # type: ignore[index]
        host = next(h for h in testbed.hosts() if h != leader)
        d.dcsctl("put", "/full/first", "v1")
        writer = d.writer("/full/", count=20, max_seconds=30)
        written, errors = writer.communicate(timeout=60)
        assert written.count("ack ") == 20, (written, errors)
        etcd_ids = testbed.ssh(host, "id -u etcd; id -g etcd").stdout.split()
        testbed.ssh(host, "sudo systemctl stop etcd")
        mounted = False
        try:
            testbed.enter(host, "mount", "-t", "tmpfs", "-o",
                          f"size=16m,mode=0700,uid={etcd_ids[0]},gid={etcd_ids[1]}",
                          "dcsctl-full", "/var/lib/etcd")
            mounted = True
            testbed.enter(host, "dd", "if=/dev/zero", "of=/var/lib/etcd/filler", "bs=1M",
                          check=False)  # until the filesystem is full
            testbed.ssh(host, "sudo systemctl start etcd", check=False)
            # positive control: etcd itself hit the full filesystem
            journal = testbed.ssh(host, "sudo journalctl -u etcd --no-pager -o cat -n 50").stdout
            assert "no space left on device" in journal, journal[-2000:]

            # the other members serve: writes go on, what was written is there
            d.dcsctl("put", "/full/during", "x")
            assert d.dcsctl("get", "/full/first").stdout.strip() == "v1"
            view = status_of(d)
            members = view["members"]
            assert view["healthy"] is False and isinstance(members, list)
            assert [m["healthy"] for m in members if m["name"] == host] == [False]
            assert f"{host}: the data filesystem is full: 0 MiB free of 16 MiB on " \
                "/var/lib/etcd (dcsctl-full)" in "\n".join(view["problems"]), view["problems"]  # type: ignore[arg-type]
            # up names the host, the path and the fix, and changes nothing
            _refused(d, "up", host, f"{host} disk: the data filesystem is full: 0 MiB free "
                     "of 16 MiB on /var/lib/etcd (dcsctl-full)",
                     f"free space on /var/lib/etcd on {host}")
        finally:
            if mounted:
                testbed.ssh(host, "sudo systemctl stop etcd")
                testbed.enter(host, "umount", "/var/lib/etcd")
                testbed.ssh(host, "sudo systemctl reset-failed etcd", check=False)
        # the cause gone, `up` starts the member again from its own data
        again = d.dcsctl("up")
        assert f"started {host}" in again.stderr, again.stderr  # and healthy: up waits
        assert len(d.agent("keys", "/full/")) == 22  # type: ignore[arg-type]
        assert hashes_equal(d)
    finally:
        d.dcsctl("destroy", "--yes", check=False)
