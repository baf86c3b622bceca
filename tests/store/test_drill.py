"""The disaster recovery drill on the lab: the control machine and every member's data are
lost; an escrow and the store bring back every key, user, role and scope, and a Patroni
node's existing bundle still works (same CA). Timed; with its controls refused."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from dcsctl.etcd.client import EtcdClient
from tests.patroni.harness import PATRONI_BIN, PatroniNode, patroni_node
from tests.store.test_escrow import passphrase_file
from tests.store.test_store_backup import with_store
from tests.store.versitygw import Gateway
from tests.support import cluster_of
from tests.support.lab import LabCluster, base_environ, run_cli

EPHEMERAL = "/service/demo/members/"  # Patroni's leased member keys: refreshed, not data


def _everything(lab: LabCluster) -> tuple[dict[str, bytes], dict[str, set[str]], set[str]]:
    with cluster_of(lab).admin_client() as client:
        assert isinstance(client, EtcdClient)
        keys = {kv.key: kv.value for kv in client.get_prefix("/", limit=100_000)
                if not kv.key.startswith(EPHEMERAL)}
        return keys, client.user_roles(), client.role_names()


@pytest.fixture
def patroni_on(lab: LabCluster, gateway: Gateway, tmp_path: Path
               ) -> Iterator[tuple[LabCluster, PatroniNode, Path]]:
    if not (PATRONI_BIN / "patroni").exists():
        pytest.fail("Patroni is not installed in .tools/patroni: run scripts/setup")
    with_store(lab, gateway)
    lab.ok("up")
    lab.ok("patroni", "add", "demo")
    bundle = tmp_path / "bundle"
    lab.ok("patroni", "config", "demo", "--node", "pg0", "--out", str(bundle))
    section = yaml.safe_load((bundle / "etcd3.yml").read_text())["etcd3"]
    address = lab.addresses()[0].rsplit(".", 1)[0] + ".50"
    with patroni_node("demo", "pg0", address, section, bundle) as node:
        try:
            node.wait_primary()
        except TimeoutError:
            pytest.fail(f"Patroni never became primary:\n{node.log_tail()}")
        yield lab, node, bundle


def test_drill_escrow_and_store_rebuild_everything_after_losing_it_all(
    patroni_on: tuple[LabCluster, PatroniNode, Path], gateway: Gateway, tmp_path: Path,
    lab_factory: Callable[..., LabCluster],
) -> None:
    lab, node, bundle = patroni_on
    for index in range(50):
        lab.ok("put", f"/app/config/item-{index:02d}", f"value-{index}")
    with cluster_of(lab).admin_client() as client:
        client.role_add("app-reader")
        client.role_grant("app-reader", "/app/", "read")
        client.user_add("app", "an-app-password-1234")
        client.user_grant_role("app", "app-reader")
    node.stop()  # Patroni releases its leader key; PostgreSQL's data stays
    before = _everything(lab)
    assert "patroni-demo" in before[1] and "/service/demo/initialize" in before[0]

    secret = passphrase_file(tmp_path)
    escrow = tmp_path / "dcs.escrow"
    lab.ok("state", "export", "--out", str(escrow), "--passphrase-file", str(secret))
    lab.ok("backup")

    # The disaster: the control machine's state dir and every member's data are gone.
    lab.ok("down")
    shutil.rmtree(lab.home)
    assert lab.dcsctl("status").code != 0

    new_home = tmp_path / "new-control-machine"
    fresh = base_environ(new_home)
    # Controls first, each refused with nothing written: a wrong passphrase, another
    # cluster's escrow, a tampered object in the store.
    wrong = run_cli(["state", "import", str(escrow), "--passphrase-file",
                     str(passphrase_file(tmp_path, "a wrong passphrase, surely"))], fresh)
    assert wrong.code == 1 and "wrong passphrase" in wrong.err
    other = lab_factory(members=1)
    other.ok("up")
    other_escrow = tmp_path / "other.escrow"
    other.ok("state", "export", "--out", str(other_escrow), "--passphrase-file", str(secret))
    foreign = run_cli(["state", "import", str(other_escrow), "--passphrase-file", str(secret),
                       "-f", str(lab.spec_file)], fresh)
    assert foreign.code == 1 and "escrow of cluster" in foreign.err
    assert not new_home.exists() or not [p for p in new_home.rglob("*") if p.is_file()]

    started = time.monotonic()
    imported = run_cli(["state", "import", str(escrow), "--passphrase-file", str(secret)],
                       fresh)
    assert imported.code == 0, imported.err
    imported_s = time.monotonic() - started

    stored = next((gateway.root / "dcs-backups" / "prod" / lab.name).glob("*.db.sealed"))
    good = stored.read_bytes()
    stored.write_bytes(good[:5000] + bytes([good[5000] ^ 1]) + good[5001:])
    tampered = run_cli(["restore", "--latest", "--yes", "-f", str(lab.spec_file)], fresh)
    assert tampered.code == 1 and "fails authentication" in tampered.err
    stored.write_bytes(good)

    restore_started = time.monotonic()
    restored = run_cli(["restore", "--latest", "--yes", "-f", str(lab.spec_file)], fresh)
    assert restored.code == 0, restored.err
    restore_s = time.monotonic() - restore_started

    lab.environ = fresh
    after = _everything(lab)
    assert after[0] == before[0]  # every key and value
    assert after[1] == before[1] and after[2] == before[2]  # every user, its roles; roles
    listed = run_cli(["patroni", "list", "-f", str(lab.spec_file)], fresh)
    assert listed.code == 0 and "demo" in listed.out, listed.err
    # Same CA: the bundle issued before the disaster is trusted, its user logs in.
    assert (bundle / "ca.crt").read_bytes() == (new_home / lab.name / "pki" / "ca.crt").read_bytes()
    node.start()
    try:
        node.wait_primary()
    except TimeoutError:
        pytest.fail(f"Patroni did not come back on its old bundle:\n{node.log_tail()}")
    print(f"\ndrill: state import {imported_s:.2f} s, restore --latest {restore_s:.2f} s, "
          f"total {imported_s + restore_s:.2f} s")
