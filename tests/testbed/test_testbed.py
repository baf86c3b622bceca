"""The testbed itself: hosts as the guide has them, isolation enforced, up idempotent, down
leaving nothing behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.testbed.bed import REPO, Testbed
from tests.testbed.net import IsolationError


def test_hosts_are_the_guides_debian_machines(testbed: Testbed) -> None:
    assert testbed.hosts() == {"dcs-00": "192.168.56.10", "dcs-01": "192.168.56.11",
                               "dcs-02": "192.168.56.12"}
    for host, address in testbed.hosts().items():
        out = testbed.ssh(host, "hostname; id -un; sudo -n id -un; ip -4 -o addr show eth0; "
                          "cat /proc/1/comm; command -v python3 || echo no-python3").stdout
        name, user, root, addr, init, python = out.splitlines()
        assert (name, user, root, init, python) == (host, "admin", "root", "systemd",
                                                     "no-python3")
        assert f"{address}/24" in addr
    sources = testbed.ssh("dcs-00", "cat /etc/apt/sources.list.d/*").stdout
    assert sources.strip() == "deb [trusted=yes] file:/srv/dcsctl-repo ./"


def test_no_traffic_can_leave_the_bridge(testbed: Testbed) -> None:
    for host in testbed.hosts():
        result = testbed.ssh(host, "ip route; ip -6 route", check=True)
        assert "default" not in result.stdout
    out = testbed.run(["ip", "route"]).stdout
    assert "default" not in out and "192.168.56.0/24 dev eth0" in out


def test_up_is_idempotent_isolation_is_enforced_and_down_removes_everything() -> None:
    bed = Testbed(prefix="dcstbd", subnet="192.168.57")
    try:
        assert bed.up(hosts=1) == ["dcs-00"]
        assert bed.up(hosts=1) == []
        assert bed.ssh("dcs-00", "hostname").stdout.strip() == "dcs-00"
        # Positive controls: a default route, or a foreign link on the bridge, stops it.
        subprocess.run(["ip", "-n", bed.net.control_ns, "route", "add", "default", "dev",
                        "eth0"], check=True)
        with pytest.raises(IsolationError, match="default route"):
            bed.run(["true"])
        subprocess.run(["ip", "-n", bed.net.control_ns, "route", "del", "default"], check=True)
        subprocess.run(["ip", "-n", bed.net.bridge_ns, "link", "add", "stray", "type",
                        "veth", "peer", "name", "stray-peer"], check=True)
        with pytest.raises(IsolationError, match="stray"):
            bed.ssh("dcs-00", "true")
        subprocess.run(["ip", "-n", bed.net.bridge_ns, "link", "del", "stray"], check=True)
        bed.run(["true"])
        assert bed.leftovers()  # the probe sees a testbed that is up
    finally:
        bed.down()
    assert bed.leftovers() == []


def test_scripts_testbed_refuses_more_database_hosts_than_its_spec_names(
        tmp_path: Path) -> None:
    """`up --db 4` would boot a host `scripts/testbed spec` cannot name: refused before
    anything is made. Positive control: `--db 3` passes that check (it fails later, on
    the missing mmdebstrap of an empty PATH, still before anything is made)."""
    if os.geteuid() != 0:
        pytest.skip("scripts/testbed needs root")
    script = str(REPO / "scripts" / "testbed")
    environ = {**os.environ, "DCSCTL_TESTBED_PREFIX": "dcstbq",
               "DCSCTL_TESTBED_STATE": str(tmp_path)}
    refused = subprocess.run([script, "up", "--db", "4"], capture_output=True, text=True,
                             env=environ, timeout=60, check=False)
    assert refused.returncode == 1, refused.stderr
    error, _, fix = refused.stderr.partition("\nfix: ")
    assert error.startswith("error: --db 4: ") and "names 3 database hosts" in error, error
    assert fix.strip() == "scripts/testbed up --db 3 (or fewer)", refused.stderr
    assert "Traceback" not in refused.stderr and list(tmp_path.iterdir()) == []
    accepted = subprocess.run(  # the script's own Python: an empty PATH has no bash
        [str(REPO / ".venv" / "bin" / "python"), "-m", "tests.testbed.cli", "up", "--db",
         "3"], capture_output=True, text=True, cwd=REPO,
        env={**environ, "PATH": str(tmp_path / "nothing")}, timeout=60, check=False)
    assert "mmdebstrap is missing" in accepted.stderr, accepted.stderr
    assert list(tmp_path.iterdir()) == []


def test_scripts_testbed_works_on_the_testbed_its_prefix_names(testbed: Testbed) -> None:
    """A second testbed beside a running one: `scripts/testbed` reads
    DCSCTL_TESTBED_PREFIX as the tests' fixture does, and `down` returns only when its
    containers are gone, so `down && up` never collides."""
    script = str(REPO / "scripts" / "testbed")
    mine = subprocess.run([script, "status"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DCSCTL_TESTBED_PREFIX": testbed.net.prefix},
                          check=True).stdout
    assert [line.split()[0] for line in mine.splitlines()] == list(testbed.hosts())
    other = {**os.environ, "DCSCTL_TESTBED_PREFIX": "dcstbs"}
    try:
        subprocess.run([script, "up", "--hosts", "1"], env=other, check=True, timeout=300,
                       capture_output=True)
        subprocess.run([script, "down"], env=other, check=True, timeout=300,
                       capture_output=True)
        assert Testbed(prefix="dcstbs").leftovers() == []  # at once: nothing still stopping
    finally:
        Testbed(prefix="dcstbs").down()
    # the session's testbed was never touched
    assert testbed.ssh("dcs-00", "hostname").stdout.strip() == "dcs-00"
