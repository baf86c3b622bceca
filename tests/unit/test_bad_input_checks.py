"""The checks that stop `up` and `preflight` on bad hosts, as pure functions of what the host
printed: init system, clock, free space on the data filesystem, a changed SSH host key."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from dcsctl import render, spec
from dcsctl.errors import SpecError
from dcsctl.hosts.local import LocalHost
from dcsctl.hosts.ssh import Destination, unreachable
from dcsctl.state import ClusterDir
from dcsctl.targets.disk import MIN_DATA_FREE_BYTES, disk_check
from dcsctl.targets.protocol import Check, PreflightReport, Verdict
from dcsctl.targets.ssh import init_systems
from dcsctl.targets.ssh.checks import clock_check
from dcsctl.targets.ssh.place import Place
from dcsctl.targets.ssh.target import ssh_target

# What OpenSSH 9.2 prints (LogLevel=ERROR) when a known host presents another key.
CHANGED = """\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:3bN0Tq2mZk0m1cG0Xo8Vt3hJ6mB0Yb7p3qkO6f2c1aE.
Please contact your system administrator.
Add correct host key in /srv/kh to get rid of this message.
Offending ED25519 key in /srv/kh:3
Host key for dcs-02 has changed and you have requested strict checking.
Host key verification failed.
"""
UNKNOWN = ("No ED25519 host key is known for dcs-02 and you have requested strict "
           "checking.\r\nHost key verification failed.\r\n")


@pytest.mark.parametrize(("manager", "init", "verdict"), [
    ("systemd", "systemd", Verdict.OK),
    ("systemd", "sshd", Verdict.FAIL),
    ("systemd", "", Verdict.FAIL),
    ("process", "sshd", Verdict.OK),
])
def test_service_systemd_needs_systemd_as_pid_1(manager: str, init: str,
                                                verdict: Verdict) -> None:
    cluster = spec.from_mapping({**spec.digest_source(spec.ssh_spec(3, release="3.7.4")),
                                 "service": {"manager": manager}}, source="test")
    member = cluster.member("dcs-02")
    layout = render.remote_layout(cluster, member)
    place = Place(cluster, member, LocalHost(), layout, render.HostPaths.of(cluster, member),
                  layout)
    check = init_systems.kind(manager)(place).host_check(init)
    assert check.verdict is verdict
    if verdict is Verdict.FAIL:
        assert "not systemd" in check.detail
        assert "service: {manager: process}" in check.fix


def test_an_init_system_dcsctl_does_not_know_stops_the_ssh_target(tmp_path: Path) -> None:
    known = spec.digest_source(spec.ssh_spec(3, release="3.7.4"))
    cluster = spec.from_mapping({**known, "service": {"manager": "upstart"}}, source="test")
    with pytest.raises(SpecError) as refused:
        ssh_target(cluster, ClusterDir(tmp_path, cluster.name), tmp_path, {})
    assert "no init system called 'upstart'" in refused.value.message
    assert refused.value.fix.endswith("one of process, systemd")
    # the control: a name it knows builds the target (nothing is reached yet)
    ssh_target(spec.from_mapping(known, source="test"), ClusterDir(tmp_path, cluster.name),
               tmp_path, {}).close()


def test_each_init_system_keeps_its_files_under_the_members_remote_root() -> None:
    cluster = spec.ssh_spec(1, release="3.7.4")
    member = cluster.members[0].model_copy(update={"remote_root": "/srv/host0"})
    layout = render.remote_layout(cluster, member)
    place = Place(cluster, member, LocalHost(), layout, render.HostPaths.of(cluster, member),
                  layout)
    unit = init_systems.Systemd(place).files()  # (its teardown would run systemctl here)
    assert [(f.path, f.read_at_start) for f in unit] == [
        (PurePosixPath("/srv/host0/etc/systemd/system/etcd.service"), True)]
    assert init_systems.DetachedProcess(place).teardown() == [
        PurePosixPath("/srv/host0/run/dcsctl-etcd.pid")]


@pytest.mark.parametrize(("remote", "verdict", "says"), [
    ("1000.100", Verdict.OK, "+0 ms"),
    ("1000.400", Verdict.OK, "+300 ms"),
    ("1000.700", Verdict.OK, "+600 ms"),  # 600 +- 100 ms: not proven over 500 ms
    ("1000.750", Verdict.FAIL, "+650 ms"),
    ("1120.100", Verdict.FAIL, "+120000 ms"),
    ("880.100", Verdict.FAIL, "-120000 ms"),
    ("not a time", Verdict.WARN, "could not read"),
])
def test_clock_check_measures_the_offset_from_the_round_trips_midpoint(
        remote: str, verdict: Verdict, says: str) -> None:
    check = clock_check("dcs-01", remote, before=1000.0, after=1000.2)
    assert check.verdict is verdict
    assert says in check.detail
    if verdict is Verdict.FAIL:
        assert "chrony" in check.fix


def _df(free_kib: int) -> str:
    return f"tmpfs 32768 {32768 - free_kib} {free_kib} 99% /var/lib/etcd\n"


@pytest.mark.parametrize(("line", "verdict", "says"), [
    (_df(0), Verdict.FAIL, "the data filesystem is full: 0 MiB free of 32 MiB on "
     "/var/lib/etcd (tmpfs)"),
    (_df(MIN_DATA_FREE_BYTES // 1024 - 1), Verdict.FAIL, "64 MiB free"),
    ("/dev/sda1 10000000 2000000 8000000 20% /\n", Verdict.OK, "7812 MiB free"),
    ("", Verdict.WARN, "not measured"),
])
def test_disk_check_wants_room_for_a_wal_segment(line: str, verdict: Verdict,
                                                 says: str) -> None:
    check = disk_check("dcs-02", "/var/lib/etcd", line)
    assert check.verdict is verdict
    assert says in check.detail
    if verdict is Verdict.FAIL:
        assert "free space on /var/lib/etcd on dcs-02" in check.fix


def test_a_failed_report_is_one_error_naming_each_member_and_check() -> None:
    report = PreflightReport((
        Check("dcs-00", "init", Verdict.OK, "PID 1 is systemd"),
        Check("dcs-01", "clock", Verdict.FAIL, "clock +90000 ms", fix="sync it"),
        Check("dcs-02", "disk", Verdict.FAIL, "full", fix="free space"),
    ))
    problem = report.problem()
    assert problem is not None
    assert problem.message == "dcs-01 clock: clock +90000 ms; dcs-02 disk: full"
    assert problem.fix == "sync it"
    assert PreflightReport(report.checks[:1]).problem() is None


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_changed_host_key_names_host_fingerprint_and_how_to_accept_it(newline: str) -> None:
    stderr = CHANGED.replace("\n", newline)
    error = unreachable("dcs-02", Destination("dcs-02"), stderr, "/srv/kh")
    assert error.message == (
        "dcs-02: the SSH host key of dcs-02 has changed (the old one is /srv/kh:3): it now "
        "presents ED25519 key SHA256:3bN0Tq2mZk0m1cG0Xo8Vt3hJ6mB0Yb7p3qkO6f2c1aE; dcsctl "
        "did not log in")
    assert "`ssh-keygen -R dcs-02 -f /srv/kh`" in error.fix
    assert "`ssh-keyscan -t ed25519 dcs-02 >> /srv/kh`" in error.fix
    assert "intercepting" in error.fix


def test_a_changed_host_key_on_another_port_scans_that_port() -> None:
    stderr = CHANGED.replace("Host key for dcs-02", "Host key for [dcs-02]:2222")
    error = unreachable("dcs-02", Destination("dcs-02", port=2222), stderr, None)
    assert "`ssh-keygen -R '[dcs-02]:2222' -f /srv/kh`" in error.fix
    assert "`ssh-keyscan -p 2222 -t ed25519 dcs-02 >> /srv/kh`" in error.fix


def test_an_unknown_host_key_is_not_called_changed() -> None:
    error = unreachable("dcs-02", Destination("dcs-02"), UNKNOWN, "/srv/kh")
    assert "changed" not in error.message
    assert "Host key verification failed." in error.message
    assert "/srv/kh" in error.fix
