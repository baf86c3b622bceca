"""`dcsctl state export|import` on real clusters: the escrow brings the control machine
back; a wrong passphrase, a damaged file or another cluster's escrow writes nothing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.store.test_store_backup import with_store
from tests.store.versitygw import Gateway
from tests.support.lab import LabCluster, base_environ, run_cli

PASSPHRASE = "drill passphrase, kept apart"


def passphrase_file(directory: Path, text: str = PASSPHRASE, mode: int = 0o600) -> Path:
    path = directory / f"passphrase-{len(list(directory.glob('passphrase-*')))}"
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mode & 0o777, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def one(lab_factory: Callable[..., LabCluster]) -> LabCluster:
    cluster = lab_factory(members=1)
    cluster.ok("up")
    cluster.ok("patroni", "add", "demo")
    return cluster


def test_export_then_import_on_a_fresh_home_brings_back_every_state_file(
    one: LabCluster, tmp_path: Path
) -> None:
    out = tmp_path / "escrow.dcs"
    exported = one.ok("state", "export", "--out", str(out), "--passphrase-file",
                      str(passphrase_file(tmp_path)))
    assert "escrow of" in exported.out and oct(out.stat().st_mode & 0o777) == "0o600"
    for secret in ("ca.key", "root.password", "patroni-demo.password", "manifest.key"):
        held = next(one.state.rglob(secret)).read_bytes()
        assert held not in out.read_bytes()  # sealed

    fresh = base_environ(tmp_path / "new-home")
    imported = run_cli(["state", "import", str(out), "--passphrase-file",
                        str(passphrase_file(tmp_path))], fresh)
    assert imported.code == 0, imported.err
    before = {k: v for k, v in tree(one.state).items()
              if not k.startswith(("members/", "lock", "escrow.json"))}
    after = tree(tmp_path / "new-home" / one.name)
    assert {k: v for k, v in after.items() if k != "escrow.json"} == before
    # The new machine administers the running cluster with what it imported.
    listed = run_cli(["patroni", "list", "--cluster", one.name], fresh)
    assert listed.code == 0 and "demo" in listed.out, listed.err
    status = run_cli(["status", "--cluster", one.name], fresh)
    assert status.code == 0 and "escrow" not in status.err, status.err


def test_wrong_passphrase_damage_and_another_clusters_escrow_write_nothing(
    one: LabCluster, lab_factory: Callable[..., LabCluster], tmp_path: Path
) -> None:
    out = tmp_path / "escrow.dcs"
    one.ok("state", "export", "--out", str(out), "--passphrase-file",
           str(passphrase_file(tmp_path)))
    other = lab_factory(members=1)
    home = tmp_path / "new-home"
    fresh = base_environ(home)

    wrong = run_cli(["state", "import", str(out), "--passphrase-file",
                     str(passphrase_file(tmp_path, "not the passphrase at all"))], fresh)
    assert wrong.code == 1 and "wrong passphrase" in wrong.err and "fix:" in wrong.err
    damaged = tmp_path / "damaged.dcs"
    data = bytearray(out.read_bytes())
    data[-100] ^= 0x01
    damaged.write_bytes(bytes(data))
    broken = run_cli(["state", "import", str(damaged), "--passphrase-file",
                      str(passphrase_file(tmp_path))], fresh)
    assert broken.code == 1 and "is damaged" in broken.err
    foreign = run_cli(["state", "import", str(out), "--passphrase-file",
                       str(passphrase_file(tmp_path)), "-f", str(other.spec_file)], fresh)
    assert foreign.code == 1 and f"escrow of cluster {one.name!r}" in foreign.err
    assert not home.exists() or not [p for p in home.rglob("*") if p.is_file()]

    # Nor over a state dir that holds another cluster of the same name (its token differs).
    taken = run_cli(["state", "import", str(out), "--passphrase-file",
                     str(passphrase_file(tmp_path))], one.environ)
    assert taken.code == 1 and "already holds this cluster's state" in taken.err
    # A passphrase file others can read is refused; argv never carries one.
    loose = run_cli(["state", "import", str(out), "--passphrase-file",
                     str(passphrase_file(tmp_path, mode=0o644))], fresh)
    assert loose.code != 0 and "readable by others" in loose.err


def test_status_warns_when_keys_or_users_changed_after_the_escrow(
    one: LabCluster, gateway: Gateway, tmp_path: Path
) -> None:
    with_store(one, gateway)
    assert "no escrow" in one.ok("status").err  # off-site backups, no escrow yet
    one.ok("state", "export", "--out", str(tmp_path / "e.dcs"), "--to-store",
           "--passphrase-file", str(passphrase_file(tmp_path)))
    assert "escrow" not in one.ok("status").err
    stored = list((gateway.root / "dcs-backups" / "prod" / one.name / "escrow").iterdir())
    assert len(stored) == 1 and stored[0].read_bytes() == (tmp_path / "e.dcs").read_bytes()
    fresh = base_environ(tmp_path / "new-home")  # a new machine: spec + store credentials
    from_store = run_cli(["state", "import", "--from-store", "-f", str(one.spec_file),
                          "--passphrase-file", str(passphrase_file(tmp_path))], fresh)
    assert from_store.code == 0 and "imported cluster" in from_store.out, from_store.err
    assert (tmp_path / "new-home" / one.name / "secrets" / "backup.key").read_bytes() == \
        (one.state / "secrets" / "backup.key").read_bytes()
    changed = one.state / "secrets" / "patroni-demo.password"
    later = os.stat(changed).st_mtime + 120
    os.utime(changed, (later, later))  # a change after the escrow (clock-independent)
    one.ok("patroni", "add", "second")
    warned = one.ok("status").err
    assert "older than the last change of keys or users" in warned, warned
