"""The guide's cluster on the recommended release from the start (dcsctl's default), on
three new machines.

The rest of the cluster's life on real hosts runs in test_patroni_nodes.py, under Patroni
on the database hosts (one boot and one cluster for all of it): a fourth host added and
removed, a host replaced by a new machine of the same name (new disk, new SSH host key),
certificate rotation and a rolling restart under a writer, an upgrade through the spec
from Debian's package (3.5.16, its advisories accepted by name) to releases from the
site's mirror (-> newest 3.5 -> 3.6 -> 3.7) under a writer."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from dcsctl.etcd.versions import RECOMMENDED
from tests.testbed.bed import Testbed
from tests.testbed.deployment import (
    Deployment,
    make_deployment,
    status_of,
)


def _timed(d: Deployment, *argv: str, check: bool = True) -> tuple[
        subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    result = d.dcsctl(*argv, check=check)
    return result, time.monotonic() - start


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

