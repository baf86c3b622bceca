"""The guide's cluster through its life on real hosts: certificate
rotation and a rolling restart under a writer, an upgrade through the spec from Debian's
package (3.5.16, its advisories accepted by name) to releases from the site's mirror
(-> newest 3.5 -> 3.6) under a writer, and a cluster on the recommended release from the
start (dcsctl's default).

A fourth host added and removed and a host replaced by a new machine of the same name
(new disk, new SSH host key) run in test_patroni_nodes.py, under Patroni on the database
hosts (one boot and one cluster for both)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dcsctl.etcd.versions import NEWEST, RECOMMENDED, Version
from tests.faults.scenarios import MIN_ACKED_DURING
from tests.support.lab import risks_of
from tests.testbed.bed import Testbed
from tests.testbed.conftest import (
    Deployment,
    make_deployment,
    status_of,
    wait_healthy,
)
from tests.testbed.history import recording


def _operators_known_hosts(d: Deployment, hosts: list[str]) -> Path:
    """The operator's own known_hosts (the keys recorded when the machines were set up),
    not the testbed's, which learns every new key: the spec points at this copy."""
    known = d.tmp / "known_hosts"
    lines = d.bed.known_hosts.read_text().splitlines(keepends=True)
    known.write_text("".join(line for line in lines if line.split(",")[0] in hosts))
    d.spec_file.write_text(d.spec_file.read_text().replace(
        f"known_hosts_file: {d.bed.known_hosts}", f"known_hosts_file: {known}"))
    return known


def _timed(d: Deployment, *argv: str, check: bool = True) -> tuple[
        subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    result = d.dcsctl(*argv, check=check)
    return result, time.monotonic() - start


def _members(d: Deployment) -> dict[str, dict[str, object]]:
    view = wait_healthy(d)
    return {m["name"]: m for m in view["members"]}


def _hashes(d: Deployment) -> set[object]:
    hashes = d.agent("hashes")
    assert isinstance(hashes, dict)
    return set(hashes.values())


@pytest.fixture(scope="module")
def life(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The guide's own spec (install: apt, Debian's 3.5.16 with its advisories accepted by
    name; service: systemd) up on dcs-00..02, with the operator's own known_hosts;
    destroyed after the module, the testbed back to 3 hosts."""
    d = make_deployment(testbed, tmp_path_factory.mktemp("testbed-life"))
    document = yaml.safe_load(d.spec_file.read_text())
    document["install"] = {"method": "apt"}
    document["etcd"]["accept_risks"] = risks_of(Version(3, 5, 16))
    d.spec_file.write_text(yaml.safe_dump(document, sort_keys=False))
    _operators_known_hosts(d, list(testbed.hosts()))
    _, took = _timed(d, "up")
    print(f"up: {took:.1f} s")
    try:
        yield d
    finally:
        d.dcsctl("destroy", "--yes", check=False)
        while len(testbed.hosts()) > 3:
            testbed.remove_last_host()


def test_rotation_restart_and_an_upgrade_through_the_spec_lose_no_acknowledged_write(
        life: Deployment, testbed: Testbed) -> None:
    d = life
    mirror = testbed.release_mirror()
    assert mirror is not None
    wait_healthy(d)
    with recording(d, "rotate-and-restart") as rolled:
        rolled.took_effect()  # writes from here on count: during the rotation and restart
        _, took_rotate = _timed(d, "certs", "rotate", "--yes")
        _, took_restart = _timed(d, "restart")
    rotation = rolled.history
    assert rotation is not None and rolled.error == "", rolled.error
    assert rotation.linearizable, rotation.checker
    assert rotation.acked_during >= MIN_ACKED_DURING, rotation
    print(f"certs rotate {took_rotate:.1f} s, restart {took_restart:.1f} s: {rotation}")

    # Debian's 3.5.16 -> the newest 3.5 release (`up`), then -> 3.6 (`dcsctl upgrade`),
    # each named by version alone and fetched from the site's mirror.
    def name_release(step: Version) -> None:
        document = yaml.safe_load(d.spec_file.read_text())
        document["install"] = mirror.install(step)
        d.spec_file.write_text(yaml.safe_dump(document, sort_keys=False))

    # Positive control: straight from Debian's 3.5.16 to 3.6 is not a supported path, and
    # the spec's switch to a release does not slip past that check.
    name_release(NEWEST["3.6"])
    refused = d.dcsctl("up", check=False)
    assert refused.returncode != 0 and "refusing to move etcd 3.5.16" in refused.stderr, (
        refused.stderr)
    assert {m["status"]["version"] for m in _members(d).values()} == {  # type: ignore[index]
        "3.5.16"}
    took: list[float] = []
    with recording(d, "upgrade-through-the-spec") as upgrading:
        upgrading.took_effect()
        for step, command in ((NEWEST["3.5"], ("up",)),
                              (NEWEST["3.6"], ("upgrade", "--to", str(NEWEST["3.6"])))):
            name_release(step)
            result, seconds = _timed(d, *command)
            took.append(seconds)
            assert f"-> {step}" in result.stdout + result.stderr
            assert "snapshot before the change" in result.stdout + result.stderr
            assert {m["status"]["version"]  # type: ignore[index]
                    for m in _members(d).values()} == {str(step)}
    upgraded = upgrading.history
    assert upgraded is not None and upgrading.error == "", upgrading.error
    assert upgraded.linearizable, upgraded.checker
    assert upgraded.acked_during >= MIN_ACKED_DURING, upgraded
    for host in ("dcs-00", "dcs-01", "dcs-02"):
        unit = testbed.ssh(host, "systemctl cat etcd").stdout
        assert "ExecStart=/usr/local/bin/etcd\n" in unit, unit
        running = testbed.ssh(host, "sudo readlink /proc/$(systemctl show -p MainPID --value "
                              "etcd)/exe").stdout.strip()
        assert running == "/usr/local/bin/etcd"
    assert len(_hashes(d)) == 1
    assert "no changes" in d.dcsctl("up").stderr
    print(f"upgrade apt 3.5.16 -> {NEWEST['3.5']} (up) {took[0]:.1f} s, -> {NEWEST['3.6']} "
          f"(upgrade) {took[1]:.1f} s: {upgraded}")


def test_the_default_release_from_the_start_on_new_machines(testbed: Testbed,
                                                            tmp_path: Path) -> None:
    hosts = ["dcs-00", "dcs-01", "dcs-02"]
    start = time.monotonic()
    testbed.rebuild(*hosts)
    took_rebuild = time.monotonic() - start
    d = make_deployment(testbed, tmp_path)  # init's spec: the recommended release
    try:
        up, took_up = _timed(d, "up")
        assert "healthy: 3/3 members healthy" in up.stdout
        view = status_of(d)
        assert {m["status"]["version"] for m in view["members"]} == {str(RECOMMENDED)}
        for host in hosts:
            assert testbed.ssh(host, "dpkg -s etcd-server", check=False).returncode != 0
            assert testbed.ssh(host, "systemctl is-active etcd").stdout.strip() == "active"
        destroyed, took_destroy = _timed(d, "destroy", "--yes")
        assert ("left on each host: the etcd binaries in /usr/local/bin and the `etcd` "
                "user") in destroyed.stdout
        assert testbed.ssh("dcs-01", "ls /usr/local/bin").stdout.split() == [
            "etcd", "etcdctl", "etcdutl"]
    finally:
        d.dcsctl("destroy", "--yes", check=False)
    print(f"3 new machines {took_rebuild:.1f} s; up (release {RECOMMENDED}) {took_up:.1f} s, "
          f"destroy {took_destroy:.1f} s")

