"""The guide's deployment, for real: three Debian hosts, etcd's release of the version
dcsctl recommends (from the site's HTTPS mirror: the hosts have no internet), a systemd
unit, their own network; the operator's commands from start to end. And the guide's own
`install: apt`, refused for the advisories of what Debian ships."""

from __future__ import annotations

from pathlib import Path

import yaml

from dcsctl.etcd.versions import RECOMMENDED
from tests.testbed.bed import Testbed
from tests.testbed.deployment import make_deployment, status_of


def test_the_guides_deployment_from_preflight_to_destroy(testbed: Testbed,
                                                          tmp_path: Path) -> None:
    # New machines, as in the guide: other tests on this session's testbed leave what
    # `destroy` leaves on purpose (Debian's packages, the etcd user).
    testbed.rebuild(*testbed.hosts())
    d = make_deployment(testbed, tmp_path)
    spec = yaml.safe_load(d.spec_file.read_text())
    assert spec["install"]["method"] == "release"
    assert spec["install"]["version"] == str(RECOMMENDED)
    assert spec["service"]["manager"] == "systemd"
    hosts = list(testbed.hosts())

    # preflight: real OS, systemd, fsync measured without python3 on the hosts
    checks = {(c["member"], c["check"]): c for c in
              yaml.safe_load(d.dcsctl("preflight", "--json").stdout)["checks"]}
    for host in hosts:
        assert checks[(host, "os")]["detail"] == "Debian GNU/Linux 12 (bookworm)"
        assert checks[(host, "init")]["verdict"] == "ok"
        assert "dd oflag=dsync" in checks[(host, "fsync")]["detail"]
        assert checks[(host, "fsync")]["detail"].startswith("p50 ")
        # the round trip between members, against the election timeout (one bridge: fast)
        assert checks[(host, "rtt")]["verdict"] == "ok"
        assert checks[(host, "rtt")]["detail"].startswith("up to ")

    # up --plan says what it would do and touches nothing
    plan = d.dcsctl("up", "--plan").stdout
    assert f"install etcd via release ({RECOMMENDED})" in plan, plan
    assert testbed.ssh("dcs-00", "dpkg -s etcd-server", check=False).returncode != 0

    up = d.dcsctl("up")
    assert "healthy: 3/3 members healthy" in up.stdout
    again = d.dcsctl("up")
    assert "no changes" in again.stdout + again.stderr

    # the guide's own commands on a host
    unit = testbed.ssh("dcs-01", "systemctl status etcd --no-pager", check=False).stdout
    assert "active (running)" in unit
    assert testbed.ssh("dcs-01", "systemctl is-enabled etcd").stdout.strip() == "enabled"
    journal = testbed.ssh("dcs-01", "sudo journalctl -u etcd --no-pager -o cat").stdout
    assert journal.strip(), "journalctl -u etcd shows nothing"
    health = testbed.ssh("dcs-01", "sudo sh -c '. /etc/default/etcd && "
                         "ETCDCTL_CACERT=$ETCD_TRUSTED_CA_FILE ETCDCTL_CERT=$ETCD_CERT_FILE "
                         "ETCDCTL_KEY=$ETCD_KEY_FILE etcdctl "
                         "--endpoints=$ETCD_ADVERTISE_CLIENT_URLS endpoint health'").stdout
    assert "is healthy" in health
    # and from the control side, with `dcsctl env` (the guide's ETCDCTL_* variables)
    env = d.dcsctl("env").stdout
    listed = d.bed.run(["bash", "-c", env + "\netcdctl member list"], env=d.environ).stdout
    assert all(host in listed for host in hosts)

    view = status_of(d)
    assert view["healthy"] is True and view["auth_enabled"] is True
    assert view["leader"] in hosts

    # backup -> restore: the snapshot's data, not what came after
    d.dcsctl("put", "/guide/before", "v1")
    d.dcsctl("backup")
    snapshot = sorted((d.home / "dcs" / "backups").glob("*.db"))[-1]
    d.dcsctl("put", "/guide/after", "v2")
    d.dcsctl("restore", str(snapshot), "--yes")
    assert d.dcsctl("get", "/guide/before").stdout.strip() == "v1"
    assert d.dcsctl("get", "/guide/after", check=False).returncode != 0
    assert status_of(d)["healthy"] is True

    # destroy: says what it leaves, and leaves exactly that
    destroyed = d.dcsctl("destroy", "--yes").stdout
    assert ("left on each host: the etcd binaries in /usr/local/bin and the `etcd` "
            "user") in destroyed
    for host in hosts:
        left = testbed.ssh(host, "for p in /etc/dcs /etc/default/etcd /var/lib/etcd "
                           "/etc/systemd/system/etcd.service; do "
                           "[ -e $p ] && echo $p; done; grep -c dcsctl /etc/hosts; "
                           "systemctl is-active etcd; ls /usr/local/bin | tr '\\n' ' '; "
                           "echo; id -un etcd", check=False).stdout
        assert left.split("\n") == [
            "0", "inactive", "etcd etcdctl etcdutl ", "etcd", ""], left


def test_the_guides_apt_install_is_refused_for_its_advisories_and_deploys_once_accepted(
        testbed: Testbed, tmp_path: Path) -> None:
    """`install: apt` gives Debian's 3.5.16 here (what Debian 13 ships): `up` installs the
    package (its version is known only then), refuses to start it — exit 4, every
    advisory named — and deploys once the spec accepts each by name."""
    testbed.rebuild(*testbed.hosts())
    d = make_deployment(testbed, tmp_path)
    document = yaml.safe_load(d.spec_file.read_text())
    document["install"] = {"method": "apt"}
    d.spec_file.write_text(yaml.safe_dump(document, sort_keys=False))
    try:
        refused = d.dcsctl("up", check=False, timeout=300)
        assert refused.returncode == 4, refused.stderr
        for name in ("CVE-2026-33413", "CVE-2026-73499", "CVE-2026-59818"):
            assert name in refused.stderr
        assert "etcd 3.5.16 on dcs-00, dcs-01, dcs-02" in refused.stderr
        assert "accept_risks: [" in refused.stderr and "fix:" in refused.stderr
        for host in testbed.hosts():  # installed by apt, never started, nothing written
            state = testbed.ssh(host, "systemctl is-active etcd; ls /etc/dcs 2>&1 | head -1",
                                check=False).stdout.split("\n")
            assert state[0] == "inactive" and "No such file" in state[1], state

        named = refused.stderr.split("security model", 1)[1].split("\n", 1)[0]
        document["etcd"]["accept_risks"] = [w.strip(",") for w in
                                            named.split(": ", 1)[1].split()]
        d.spec_file.write_text(yaml.safe_dump(document, sort_keys=False))
        up = d.dcsctl("up", timeout=300)
        assert "healthy: 3/3 members healthy" in up.stdout
        view = status_of(d)
        assert {m["status"]["version"] for m in view["members"]} == {"3.5.16"}
        assert any(p.startswith("running etcd 3.5.16") for p in view["problems"]), view
    finally:
        d.dcsctl("destroy", "--yes", check=False)
