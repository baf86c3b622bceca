"""dcsctl against real hosts over SSH: real sshd servers on loopback, real etcd, real TLS.

Each "host" is an sshd on its own loopback address whose filesystem is a directory tree
(remote_root); etcd runs there as the `etcd` user under the process service manager,
since systemd does not run on these machines (the unit is checked by systemd-analyze).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from dcsctl import pki, render, spec
from dcsctl.etcd.versions import NEWEST, Version
from dcsctl.wait import wait_until
from tests.integration.writer import BackgroundWriter
from tests.support import cluster_of, pack_release
from tests.support.lab import REPO, VENV_BIN, etcd_bin_dir, risks_of
from tests.support.ssh_clusters import SshCluster

DEADLINE_S = 60
GUIDE_ETCD = REPO / ".tools" / "etcd-3.5.16" / "bin"  # scripts/setup keeps the guide's etcd
# The guide's etcd has advisories that break the security model: these tests start from it
# on purpose, so their specs accept each by name.
GUIDE_RISKS_ACCEPTED = {"accept_risks": risks_of(Version(3, 5, 16))}
NEWEST_35 = NEWEST["3.5"]  # the newest 3.5 built by scripts/setup


def _mode_owner(path: Path) -> tuple[str, str]:
    info = path.stat()
    owner = f"{pwd.getpwuid(info.st_uid).pw_name}:{grp.getgrgid(info.st_gid).gr_name}"
    return format(stat.S_IMODE(info.st_mode), "o"), owner


def _log_in_as(cluster: SshCluster, user: str) -> None:
    """Point the spec at an unprivileged login (created if missing) that uses `sudo -n`."""
    if subprocess.run(["id", "-u", user], capture_output=True, check=False).returncode != 0:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", user], check=True)
    subprocess.run(["usermod", "-p", "*", user], check=True)  # unlocked, no password
    keys = cluster.lab.root / "authorized_keys"
    shutil.copy(keys / "root", keys / user)
    document = cluster.document()
    document["ssh"] = {**document["ssh"], "user": user, "sudo": True}
    for member in document["members"]:
        member["ssh"] = f"{user}@{member['ssh']}"
    cluster.rewrite(**document)


def _port_open(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((address, port)) == 0


def _etcd_pid(root: Path) -> int:
    return int((root / "run" / "dcsctl-etcd.pid").read_text().split()[0])


def test_plan_up_rerun_and_destroy_on_three_ssh_hosts(
    ssh_cluster_factory: Callable[..., SshCluster],
) -> None:
    cluster = ssh_cluster_factory(manage_etc_hosts=True)
    members = list(cluster.roots)
    for root in cluster.roots.values():  # each host's own /etc/hosts, to be kept
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n")

    plan = cluster.ok("up", "--plan")
    assert "+ install etcd via release" in plan.out
    assert "changes would be made" in plan.out
    assert not any((root / "etc" / "dcs").exists() for root in cluster.roots.values())
    assert not (cluster.home / cluster.name).exists(), "--plan must not touch the state dir"

    checks = json.loads(cluster.ok("preflight", "--json").out)
    assert checks["ok"] is True
    verdicts = {(c["member"], c["check"]): c["verdict"] for c in checks["checks"]}
    assert {verdicts[(m, check)] for m in members for check in ("ssh", "ports", "clock")} == {
        "ok"}

    first = json.loads(cluster.ok("up", "--json").out)
    assert first["changed"] is True
    status = json.loads(cluster.ok("status", "--json").out)
    assert status["healthy"] is True
    assert len(status["members"]) == 3

    # The guide's own etcdctl commands, with dcsctl's environment.
    exports = cluster.ok("env").out
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    for line in exports.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name.startswith("ETCDCTL_"):
            environ[name] = value.strip("'")
    etcdctl = str(VENV_BIN / "etcdctl")
    listed = subprocess.run([etcdctl, "member", "list", "-w", "json"], env=environ,
                            capture_output=True, text=True, timeout=30, check=True)
    assert sorted(m["name"] for m in json.loads(listed.stdout)["members"]) == members
    subprocess.run([etcdctl, "put", "foo", "bar"], env=environ, check=True, timeout=30,
                   capture_output=True)
    assert cluster.ok("get", "foo").out == "bar\n"

    again = cluster.ok("up")
    assert "no changes" in again.err
    assert "no changes" in cluster.ok("up", "--plan").out

    # On every host: the guide's places, keys private to the etcd user, no CA key.
    ca_key = (cluster.home / cluster.name / "pki" / "ca.key").read_bytes()
    for member, root in cluster.roots.items():
        certs = root / "etc" / "dcs" / "cert"
        assert _mode_owner(certs / f"{member}.key") == ("600", "etcd:etcd")
        assert _mode_owner(certs / "jwt.key") == ("600", "etcd:etcd")
        assert _mode_owner(certs / f"{member}.crt") == ("644", "root:root")
        assert _mode_owner(certs) == ("750", "root:etcd")
        assert _mode_owner(root / "var" / "lib" / "etcd") == ("700", "etcd:etcd")
        assert os.readlink(root / "etc" / "default" / "etcd") == str(root / "etc" / "dcs" /
                                                                      "etcd")
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert path.name != "ca.key"
                assert ca_key not in path.read_bytes(), f"CA key material in {path}"
        hosts = (root / "etc" / "hosts").read_text()
        assert hosts.startswith("127.0.0.1 localhost\n")
        assert f"# BEGIN dcsctl {cluster.name}" in hosts
        assert all(f" {m}\n" in hosts for m in members)
        pid = _etcd_pid(root)
        uid = next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text()
                   .splitlines() if line.startswith("Uid:"))
        assert int(uid) != 0, "etcd must not run as root"
        assert b"ETCDCTL" not in Path(f"/proc/{pid}/environ").read_bytes()

    # No secret ever crossed in a command line (keys and files travel on stdin).
    commands = cluster.lab.commands.read_text()
    password = (cluster.home / cluster.name / "secrets" / "root.password").read_text().strip()
    assert commands, "the audit log recorded nothing"
    assert password not in commands
    assert "PRIVATE KEY" not in commands

    cluster_id = status["cluster_id"]
    cluster.ok("down")
    assert not any((root / "run" / "dcsctl-etcd.pid").exists() for root in cluster.roots.values())
    cluster.ok("up")
    assert json.loads(cluster.ok("status", "--json").out)["cluster_id"] == cluster_id
    assert cluster.ok("get", "foo").out == "bar\n"

    pids = [_etcd_pid(root) for root in cluster.roots.values()]
    cluster.ok("destroy", "--yes")
    for root in cluster.roots.values():
        assert not (root / "etc" / "dcs" / "cert").exists() or not any(
            (root / "etc" / "dcs" / "cert").iterdir())
        assert not (root / "var" / "lib" / "etcd").exists()
        assert (root / "etc" / "hosts").read_text() == "127.0.0.1 localhost\n"
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_unreachable_host_is_a_clear_error_and_nothing_is_written(
    ssh_cluster_factory: Callable[..., SshCluster],
) -> None:
    cluster = ssh_cluster_factory()
    document = cluster.document()
    document["members"][1]["ssh"] = f"{document['members'][1]['address']}:2299"  # no sshd
    document["ssh"]["config_file"] = None
    document["ssh"]["connect_timeout_s"] = 3
    cluster.rewrite(**document)
    result = cluster.dcsctl("up")
    assert result.code == 4, result.err
    assert "cannot reach" in result.err and "fix:" in result.err
    assert "Traceback" not in result.err
    assert not (cluster.home / cluster.name).exists()
    assert not any((root / "etc").exists() for root in cluster.roots.values())


def test_a_changed_host_key_is_refused(ssh_cluster_factory: Callable[..., SshCluster]) -> None:
    cluster = ssh_cluster_factory()
    known = cluster.lab.known_hosts
    lines = known.read_text().splitlines()
    first, second = lines[0].split(), lines[1].split()
    # Host 0 now "presents" host 1's key as far as known_hosts is concerned: a MITM.
    known.write_text("\n".join([" ".join([first[0], *second[1:]]), *lines[1:]]) + "\n")
    result = cluster.dcsctl("up")
    assert result.code == 4
    assert "host key" in result.err.lower()
    assert "never accepts" in result.err
    assert not any((root / "etc").exists() for root in cluster.roots.values())


def test_sudo_that_wants_a_password_is_a_clear_error(
    ssh_cluster_factory: Callable[..., SshCluster], tmp_path: Path
) -> None:
    cluster = ssh_cluster_factory()
    _log_in_as(cluster, "dcsctl-nosudo")
    result = cluster.dcsctl("up")
    assert result.code == 4, result.err
    assert "sudo" in result.err and "passwordless sudo" in result.err
    assert not any((root / "etc").exists() for root in cluster.roots.values())


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    cluster_spec = spec.from_mapping({"target": "ssh", "members": [
        {"name": "dcs-00", "address": "10.0.0.10"}]})
    member = cluster_spec.members[0]
    layout = render.remote_layout(cluster_spec, member)
    unit = tmp_path / "etcd.service"
    unit.write_bytes(render.systemd_unit(cluster_spec, layout, VENV_BIN / "etcd"))
    verified = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                              capture_output=True, text=True, timeout=60, check=False)
    problems = [line for line in verified.stderr.splitlines() if str(unit) in line]
    assert verified.returncode == 0 and not problems, verified.stderr
    assert "User=etcd" in unit.read_text()
    assert f"EnvironmentFile={layout.config}" in unit.read_text()


def test_day_two_on_ssh_hosts_backup_restore_members_and_a_key_rotation(
    ssh_cluster_factory: Callable[..., SshCluster],
) -> None:
    cluster = ssh_cluster_factory(spare=1)
    cluster.ok("up")
    cluster.ok("put", "/before", "1")

    backup = cluster.ok("backup")
    snapshot = next((cluster.home / cluster.name / "backups").glob("*.db"))
    assert "Snapshot saved" in backup.out
    cluster.ok("put", "/after", "2")
    restored = cluster.ok("restore", str(snapshot), "--yes")
    assert "Traceback" not in restored.err
    assert cluster.ok("get", "/before").out == "1\n"
    assert cluster.dcsctl("get", "/after").code != 0, "the restore brought back the snapshot"
    assert not any(Path(f"{root}/var/lib/etcd.pre-restore").exists()
                   for root in cluster.roots.values())

    # A fourth host joins as a learner, is promoted, then leaves again with its keys.
    (spare, address), = cluster.spare.items()
    root = cluster.roots[spare]
    cluster.ok("member", "add", spare, "--address", address, "--ssh", spare,
               "--remote-root", str(root))
    listed = json.loads(cluster.ok("status", "--json").out)
    assert len(listed["members"]) == 4 and listed["healthy"] is True
    assert (root / "etc" / "dcs" / "cert" / f"{spare}.key").exists()
    cluster.ok("member", "remove", spare, "--yes")
    assert not (root / "etc" / "dcs" / "cert" / f"{spare}.key").exists()
    assert len(json.loads(cluster.ok("status", "--json").out)["members"]) == 3

    # The removed member's certificate is revoked on every remaining host.
    first = next(iter(cluster.roots))
    crl = cluster.roots[first] / "etc" / "dcs" / "cert" / "ca.crl"
    assert len(pki.revoked_serials(crl.read_bytes())) == 1

    # A key rotation: new keys on the hosts (one rolling restart), old certificates revoked.
    # (Certificates reissued in place, a rolling restart and a CA rotation run on lab and
    # SSH hosts alike: tests/integration/test_operations.py, the any_cluster tests.)
    key = cluster.roots[first] / "etc" / "dcs" / "cert" / f"{first}.key"
    old_key = key.read_bytes()
    members = [m for m in cluster.roots if m != spare]
    cluster.ok("certs", "rotate")
    assert key.read_bytes() != old_key
    assert len(pki.revoked_serials(crl.read_bytes())) == 1 + 1 + len(members)  # + admin
    assert json.loads(cluster.ok("status", "--json").out)["healthy"] is True
    assert cluster.ok("get", "/before").out == "1\n"


def test_up_through_passwordless_sudo_as_an_unprivileged_user(
    ssh_cluster_factory: Callable[..., SshCluster],
) -> None:
    """The default way in (`ssh: {sudo: true}`): every command becomes `sudo -n -- argv`."""
    user = "dcsctl-sudoer"
    sudoers = Path("/etc/sudoers.d/dcsctl-test-sudoer")
    sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)
    try:
        cluster = ssh_cluster_factory(members=1)
        _log_in_as(cluster, user)
        preflight = json.loads(cluster.ok("preflight", "--json").out)
        assert {c["detail"] for c in preflight["checks"] if c["check"] == "privileges"} == {
            "root via sudo -n"}
        cluster.ok("up")
        assert json.loads(cluster.ok("status", "--json").out)["healthy"] is True
        (member,) = cluster.roots
        key = cluster.roots[member] / "etc" / "dcs" / "cert" / f"{member}.key"
        assert _mode_owner(key) == ("600", "etcd:etcd")
        cluster.ok("destroy", "--yes")
    finally:
        sudoers.unlink(missing_ok=True)


def test_a_new_release_in_the_spec_upgrades_the_hosts_one_member_at_a_time(
    ssh_cluster_factory: Callable[..., SshCluster], tmp_path: Path
) -> None:
    """From the guide's etcd 3.5.16 to the project's: `up` installs, then restarts each
    member in turn (the others keep quorum), and the data stays."""
    old_tarball, old_sha = pack_release(GUIDE_ETCD, tmp_path)
    cluster = ssh_cluster_factory(install={"method": "release", "tarball": str(old_tarball),
                                           "sha256": old_sha}, etcd=GUIDE_RISKS_ACCEPTED)
    cluster.ok("up")
    cluster.ok("put", "/kept", "yes")
    before = json.loads(cluster.ok("status", "--json").out)
    assert {m["status"]["version"] for m in before["members"]} == {"3.5.16"}

    new_tarball, new_sha = pack_release(etcd_bin_dir(NEWEST_35), tmp_path)
    cluster.rewrite(install={"method": "release", "tarball": str(new_tarball),
                             "sha256": new_sha})
    upgraded = cluster.ok("up")
    assert f"etcd 3.5.16 -> {NEWEST_35}" in upgraded.err  # one member at a time
    after = json.loads(cluster.ok("status", "--json").out)
    assert after["healthy"] is True
    assert {m["status"]["version"] for m in after["members"]} == {str(NEWEST_35)}
    assert after["cluster_id"] == before["cluster_id"]
    assert cluster.ok("get", "/kept").out == "yes\n"
    assert "no changes" in cluster.ok("up").err
    assert "snapshot before the change" in upgraded.err
    assert list((cluster.state / "backups").glob("*.db")), "a snapshot comes first"

    # Back to 3.5.16 would be a downgrade: refused before any host is touched.
    cluster.rewrite(install={"method": "release", "tarball": str(old_tarball),
                             "sha256": old_sha})
    refused = cluster.dcsctl("up")
    assert refused.code == 1 and "downgrade" in refused.err
    assert {m["status"]["version"] for m in json.loads(
        cluster.ok("status", "--json").out)["members"]} == {str(NEWEST_35)}


def test_status_answers_when_a_hosts_ssh_is_down(
    ssh_cluster_factory: Callable[..., SshCluster],
) -> None:
    """etcd keeps serving when sshd dies; `status` still shows it, naming the lost host."""
    cluster = ssh_cluster_factory(members=1)
    cluster.ok("up")
    (server,) = cluster.lab.servers.values()
    os.kill(server.pid, signal.SIGTERM)
    wait_until(lambda: not _port_open(server.address, server.port), timeout=DEADLINE_S,
               what="sshd did not stop")
    view = cluster.dcsctl("status", "--json")
    assert view.code == 0, view.err
    data = json.loads(view.out)
    assert data["members"][0]["healthy"] is True
    assert data["members"][0]["pid"] is None
    assert any("cannot reach" in problem for problem in data["problems"])


def test_a_stale_data_dir_from_another_cluster_cannot_win(
    ssh_cluster_factory: Callable[..., SshCluster],
) -> None:
    """The guide's own cluster left /var/lib/etcd/member behind: a new cluster must not
    start on it (etcd would ignore initial-cluster and revive the old member)."""
    cluster = ssh_cluster_factory()
    first = next(iter(cluster.roots.values()))
    stale = first / "var" / "lib" / "etcd" / "member"
    stale.mkdir(parents=True)
    (stale / "snap").mkdir()
    refused = cluster.dcsctl("up")
    assert refused.code == 4, refused.err
    assert "holds etcd data this new cluster did not create" in refused.err
    assert "mv " in refused.err
    assert not any((root / "run" / "dcsctl-etcd.pid").exists()
                   for root in cluster.roots.values()), "nothing may start"
    assert (stale / "snap").exists(), "the old data is the user's to move, never deleted"
    shutil.move(str(first / "var" / "lib" / "etcd"), str(first / "var" / "lib" / "etcd.old"))
    cluster.ok("up")
    assert json.loads(cluster.ok("status", "--json").out)["healthy"] is True
    assert "no changes" in cluster.ok("up").err


def test_upgrade_chain_on_ssh_hosts_from_the_guides_etcd_to_3_7(
    ssh_cluster_factory: Callable[..., SshCluster], tmp_path: Path
) -> None:
    """`dcsctl upgrade` on an SSH cluster: each step's release named in the spec, pushed to
    each host just before its member restarts, under a bounded writer."""
    tarball, sha256 = pack_release(GUIDE_ETCD, tmp_path)
    cluster = ssh_cluster_factory(install={"method": "release", "tarball": str(tarball),
                                           "sha256": sha256}, etcd=GUIDE_RISKS_ACCEPTED)
    cluster.ok("up")
    cluster.ok("put", "/service/demo/leader", "pg0")
    chain = [NEWEST["3.5"], NEWEST["3.6"], NEWEST["3.7"]]
    with BackgroundWriter(cluster, max_seconds=600) as writer:
        writer.wait_acked(10)
        for step in chain:
            tarball, sha256 = pack_release(etcd_bin_dir(step), tmp_path)
            cluster.rewrite(install={"method": "release", "tarball": str(tarball),
                                     "sha256": sha256})
            done = cluster.ok("upgrade", "--to", str(step))
            assert f"cluster version {step.line}.0" in done.out, done.out
            versions = {m["status"]["version"] for m in json.loads(
                cluster.ok("status", "--json").out)["members"]}
            assert versions == {str(step)}
            writer.wait_acked(10)
    context = cluster_of(cluster)
    with context.admin_client() as client:
        lost = [key for key in writer.acked if client.get(key) is None]
    assert lost == [], f"{len(lost)} of {len(writer.acked)} acknowledged writes lost"
    assert cluster.ok("get", "/service/demo/leader").out == "pg0\n"
    assert "no changes" in cluster.ok("up").err
