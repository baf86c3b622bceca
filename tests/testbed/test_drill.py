"""The disaster recovery drill on real hosts: the guide's three Debian machines under
systemd, the S3 store (versitygw) on the control side. The control machine's state dir
and every host's etcd data are lost; on a fresh DCSCTL_HOME, `state import` + `restore
--latest` bring back every key, user, role and scope, and a Patroni bundle issued before
the disaster still logs in (same CA). Timed."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.store.test_escrow import passphrase_file
from tests.store.versitygw import Gateway, versitygw
from tests.support.lab import VENV_BIN
from tests.testbed.bed import Testbed
from tests.testbed.deployment import Deployment, guide_cluster_on, wait_healthy

HOSTS = ("dcs-00", "dcs-01", "dcs-02")


@pytest.fixture
def stored(testbed: Testbed, tmp_path: Path) -> Iterator[tuple[Deployment, Gateway]]:
    (tmp_path / "cluster").mkdir()
    with versitygw(tmp_path / "store", netns=testbed.net.control_ns) as gateway, \
            guide_cluster_on(testbed, tmp_path / "cluster") as deployment:
        document = yaml.safe_load(deployment.spec_file.read_text())
        document["backup"] = gateway.store_section("dcs-backups")
        deployment.spec_file.write_text(yaml.safe_dump(document, sort_keys=False))
        yield deployment, gateway


def _keys(deployment: Deployment) -> list[str]:
    keys = deployment.agent("keys", "/")
    assert isinstance(keys, list)
    return sorted(str(k) for k in keys)


def _bundle_reads(deployment: Deployment, bundle: Path, password: str) -> str:
    """etcdctl on the control side with the Patroni node's bundle: its CA, its client
    certificate, its scope user (password through the environment, not argv)."""
    environ = dict(deployment.environ, ETCDCTL_USER=f"patroni-demo:{password}")
    result = deployment.bed.run(
        [str(VENV_BIN / "etcdctl"), "--endpoints=https://dcs-00:2379",
         f"--cacert={bundle / 'ca.crt'}", f"--cert={bundle / 'pg0.crt'}",
         f"--key={bundle / 'pg0.key'}", "get", "--prefix", "/service/demo/", "--keys-only"],
        env=environ, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_drill_on_real_hosts(stored: tuple[Deployment, Gateway], tmp_path: Path) -> None:
    deployment, _gateway = stored
    bed = deployment.bed
    deployment.dcsctl("patroni", "add", "demo")
    bundle = tmp_path / "bundle"
    deployment.dcsctl("patroni", "config", "demo", "--node", "pg0", "--out", str(bundle))
    password = (deployment.home / "dcs" / "secrets" / "patroni-demo.password").read_text()
    deployment.dcsctl("put", "/service/demo/config", "{\"ttl\": 30}")
    writer = deployment.writer("/drill/", 40, 60)
    written, errors = writer.communicate(timeout=90)
    assert written.count("ack ") == 40, errors
    before = _keys(deployment)
    roles_before = deployment.dcsctl("patroni", "list").stdout

    secret = passphrase_file(tmp_path)
    escrow = tmp_path / "dcs.escrow"
    deployment.dcsctl("state", "export", "--out", str(escrow), "--passphrase-file",
                      str(secret))
    deployment.dcsctl("backup")

    # The disaster: etcd stopped on every host and its data deleted; the control
    # machine's state dir gone.
    deployment.dcsctl("down")
    for host in HOSTS:
        bed.enter(host, "rm", "-rf", "/var/lib/etcd/member")
    shutil.rmtree(deployment.home)

    deployment.home = tmp_path / "new-control-machine"
    wrong = deployment.dcsctl("state", "import", str(escrow), "--passphrase-file",
                              str(passphrase_file(tmp_path, "not the drill passphrase")),
                              check=False)
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
    started = time.monotonic()
    bed.run([str(VENV_BIN / "dcsctl"), "state", "import", str(escrow), "--passphrase-file",
             str(secret)], env=deployment.environ)
    imported_s = time.monotonic() - started
    restore_started = time.monotonic()
    deployment.dcsctl("restore", "--latest", "--yes", timeout=300)
    restore_s = time.monotonic() - restore_started
    wait_healthy(deployment)

    assert _keys(deployment) == before
    assert deployment.dcsctl("patroni", "list").stdout == roles_before
    assert (bundle / "ca.crt").read_bytes() == \
        (deployment.home / "dcs" / "pki" / "ca.crt").read_bytes()
    assert "/service/demo/config" in _bundle_reads(deployment, bundle, password.strip())
    print(f"\ntestbed drill: state import {imported_s:.2f} s, restore --latest "
          f"{restore_s:.2f} s, total {imported_s + restore_s:.2f} s")
    assert os.path.exists(escrow)
