"""A restore replaces only what the user meant to replace, and leaves dcsctl's records true.

Issue 12.2: another cluster's snapshot was restored without a word, and afterwards
`status` still claimed a Patroni user that etcd no longer had.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from dcsctl import snapshots
from dcsctl.etcd.client import EtcdClient
from dcsctl.snapshots import Manifest
from dcsctl.state import ClusterDir
from tests.integration.test_lab_lifecycle import exports
from tests.support import cluster_of
from tests.support.lab import VENV_BIN, LabCluster

FOREIGN_EXIT = 4  # EnvironmentProblem, like a foreign state dir


def _admin(lab: LabCluster) -> EtcdClient:
    return cluster_of(lab).admin_client()


def _backup(lab: LabCluster, *extra: str) -> Path:
    return Path(str(lab.ok("backup", "--json", *extra).json()["path"]))


def _root_password(lab: LabCluster) -> str:
    return (lab.state / "secrets" / "root.password").read_text().strip()


def _etcdctl(lab: LabCluster, *argv: str) -> str:
    """etcdctl as admin (CN=root certificate), as `dcsctl env` sets it up."""
    env = {"PATH": f"{VENV_BIN}:{os.environ['PATH']}", **exports(lab.ok("env").out)}
    done = subprocess.run(["etcdctl", *argv], env=env, capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, f"etcdctl {' '.join(argv)}: {done.stderr}"
    return done.stdout


def _status_users(lab: LabCluster) -> dict[str, object]:
    view = lab.ok("status", "--json").json()
    patroni = view["patroni"]
    assert isinstance(patroni, list)
    return {p["scope"]: p["user"] for p in patroni}


def _listed_users(lab: LabCluster) -> dict[str, object]:
    listed = json.loads(lab.ok("patroni", "list", "--json").out)
    return {p["scope"]: p["user"] for p in listed}


def test_another_clusters_snapshot_is_refused_unless_asked_and_records_follow_etcd(
    lab_factory: Callable[..., LabCluster],
) -> None:
    quota, dcs = lab_factory(name="quota"), lab_factory(name="dcs")
    for lab in (quota, dcs):
        lab.ok("up")
    quota.ok("patroni", "add", "q")
    quota.ok("put", "/service/q/leader", "quota-node")
    dcs.ok("patroni", "add", "prod")
    dcs.ok("put", "/service/prod/leader", "dcs-node")
    assert _status_users(dcs)["prod"] == "patroni-prod"
    snapshot = _backup(quota)

    refused = dcs.dcsctl("restore", str(snapshot), "--yes")
    assert refused.code == FOREIGN_EXIT, refused.err
    assert "not a backup of this cluster" in refused.err and "'quota'" in refused.err
    assert "fix:" in refused.err and "--from-other-cluster" in refused.err
    assert dcs.ok("get", "/service/prod/leader").out == "dcs-node\n"  # untouched

    done = dcs.ok("restore", str(snapshot), "--yes", "--from-other-cluster")
    # Both sides, before the restore ran: dcs now, quota's snapshot.
    now_line = next(line for line in done.out.splitlines() if "now:" in line)
    snap_line = next(line for line in done.out.splitlines() if "snapshot:" in line)
    assert "cluster dcs" in now_line and "patroni-prod" in now_line and "keys" in now_line
    assert "cluster quota" in snap_line and "taken at" in snap_line
    assert "patroni-q" in snap_line and "patroni-prod" not in snap_line
    assert "scope prod: user patroni-prod not in the snapshot, record removed" in done.out
    assert "scope q: user patroni-q is in the snapshot but dcsctl has no password" in done.out
    assert "root's password in the snapshot was not this cluster's" in done.out

    assert dcs.ok("get", "/service/q/leader").out == "quota-node\n"
    assert "prod" not in _status_users(dcs) and "prod" not in _listed_users(dcs)
    assert _status_users(dcs).get("q") is None and _listed_users(dcs).get("q") is None
    with _admin(dcs) as client:
        assert client.auth_enabled() and "root" in client.user_roles()["root"]
        assert client.password_ok("root", _root_password(dcs))  # break-glass still works
        assert not client.password_ok("root", "not-the-password")  # control


def test_a_registered_user_missing_in_etcd_is_not_claimed(lab: LabCluster) -> None:
    lab.ok("up")
    lab.ok("patroni", "add", "prod")
    lab.ok("put", "/service/prod/leader", "db-00")
    assert _status_users(lab)["prod"] == "patroni-prod"  # control
    with _admin(lab) as client:
        client.user_delete("patroni-prod")
    assert _status_users(lab)["prod"] is None and _listed_users(lab)["prod"] is None
    assert "(missing: patroni-prod)" in lab.ok("patroni", "list").out


def test_restoring_older_and_newer_backups_of_this_cluster_keeps_records_true(
    lab: LabCluster,
) -> None:
    lab.ok("up")
    before_prod = _backup(lab)
    lab.ok("patroni", "add", "prod")
    with_prod = _backup(lab)
    password = (lab.state / "secrets" / "patroni-prod.password").read_text()

    older = lab.ok("restore", str(before_prod), "--yes")  # no --from-other-cluster needed
    assert "scope prod: user patroni-prod not in the snapshot, record removed" in older.out
    assert "prod" not in _listed_users(lab)
    # Taken under the cluster ID the first restore replaced: still this cluster's.
    newer = lab.ok("restore", str(with_prod), "--yes")
    assert "scope prod: user patroni-prod is in the snapshot" in newer.out
    assert "record restored" in newer.out
    assert _listed_users(lab)["prod"] == "patroni-prod"
    assert (lab.state / "secrets" / "patroni-prod.password").read_text() == password
    with _admin(lab) as client:
        assert client.password_ok("patroni-prod", password.strip())


def test_snapshot_without_or_with_an_unsigned_manifest_needs_without_manifest(
    lab: LabCluster, tmp_path: Path
) -> None:
    lab.ok("up")
    lab.ok("put", "/kept", "v1")
    snapshot = _backup(lab)
    bare = tmp_path / "bare.db"
    bare.write_bytes(snapshot.read_bytes())
    unsigned = tmp_path / "unsigned.db"
    unsigned.write_bytes(snapshot.read_bytes())
    manifest = json.loads(snapshot.with_suffix(".json").read_text())
    manifest.update(key_id="", hmac_sha256="", format=1)
    unsigned.with_suffix(".json").write_text(json.dumps(manifest))
    for file, why in ((bare, "has no manifest"), (unsigned, "not signed")):
        refused = lab.dcsctl("restore", str(file), "--yes")
        assert refused.code == FOREIGN_EXIT, refused.err
        assert why in refused.err and "--without-manifest" in refused.err
    lab.ok("put", "/kept", "v2")
    done = lab.ok("restore", str(bare), "--yes", "--without-manifest")
    assert "no trusted manifest" in done.out
    assert lab.ok("get", "/kept").out == "v1\n"


def test_tampered_or_foreign_signed_manifests_are_refused(
    lab: LabCluster, tmp_path: Path
) -> None:
    lab.ok("up")
    snapshot = _backup(lab)
    original = Manifest.from_json(snapshot.with_suffix(".json").read_bytes())
    edits = {
        "key_count": {"key_count": (original.key_count or 0) + 1},
        "digest": {"sha256": "0" * 64},
        "users": {"users": [*original.users, "intruder"]},
    }
    for name, change in edits.items():
        copy = tmp_path / f"{name}.db"
        copy.write_bytes(snapshot.read_bytes())
        data = json.loads(snapshot.with_suffix(".json").read_text())
        data.update(change)
        copy.with_suffix(".json").write_text(json.dumps(data))
        for flags in ((), ("--from-other-cluster", "--without-manifest")):
            refused = lab.dcsctl("restore", str(copy), "--yes", *flags)
            assert refused.code == 1, refused.err
            assert "altered after it was signed" in refused.err and "fix:" in refused.err
        assert lab.dcsctl("backup", "verify", str(copy)).code == 1
    # Well-formed, but signed with another cluster's key: another cluster.
    resigned = tmp_path / "resigned.db"
    resigned.write_bytes(snapshot.read_bytes())
    resigned.with_suffix(".json").write_bytes(
        snapshots.sign(original, os.urandom(32)).to_json())
    refused = lab.dcsctl("restore", str(resigned), "--yes")
    assert refused.code == FOREIGN_EXIT and "signed by another cluster's key" in refused.err
    assert "OK" in lab.ok("backup", "verify", str(snapshot)).out  # control: the original
    assert "signed by this cluster's key" in lab.ok("backup", "verify", str(snapshot)).out


def test_manifest_key_is_private_created_once(tmp_path: Path) -> None:
    directory = ClusterDir(tmp_path, "dcs")
    assert directory.manifest_key(create=False) is None
    key = directory.manifest_key(create=True)
    assert key is not None and len(key) == 32
    assert directory.manifest_key(create=True) == key == directory.manifest_key(create=False)
    assert oct(directory.manifest_key_path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in directory.manifest_key_path.parent.iterdir()] == ["manifest.key"]


def test_list_and_retention_see_only_this_clusters_backups_in_a_shared_dir(
    lab_factory: Callable[..., LabCluster], tmp_path: Path
) -> None:
    shared = tmp_path / "shared-backups"
    one, two = lab_factory(), lab_factory()
    for lab in (one, two):
        lab.ok("up")
    ones = [_backup(one, "--dir", str(shared)) for _ in range(2)]
    # A copy of two's backup re-signed with another key: two's name, not two's backup.
    twos = [_backup(two, "--dir", str(shared))]
    impostor = shared / twos[0].name.replace(".db", "9.db")
    impostor.write_bytes(twos[0].read_bytes())
    manifest = Manifest.from_json(twos[0].with_suffix(".json").read_bytes())
    impostor.with_suffix(".json").write_bytes(snapshots.sign(manifest, os.urandom(32)).to_json())
    twos += [_backup(two, "--dir", str(shared), "--keep", "1") for _ in range(2)]

    listed = json.loads(two.ok("backup", "list", "--dir", str(shared), "--json").out)
    assert [Path(b["path"]).name for b in listed] == [twos[-1].name]
    assert all(p.exists() for p in [*ones, impostor])  # never pruned by two
    assert not twos[0].exists() and not twos[1].exists()  # two's own were
    text = two.ok("backup", "list", "--dir", str(shared))
    assert "3 other snapshot(s)" in text.err
    assert len(json.loads(one.ok("backup", "list", "--dir", str(shared), "--json").out)) == 2
    one.ok("backup", "--dir", str(shared), "--max-age", "1h", "--keep", "1")
    assert all(p.exists() for p in [twos[-1], impostor])


def test_a_snapshot_with_auth_off_and_no_root_comes_back_with_auth_on(lab: LabCluster) -> None:
    lab.ok("up")
    lab.ok("put", "/kept", "v")
    _etcdctl(lab, "auth", "disable")
    _etcdctl(lab, "user", "delete", "root")
    _etcdctl(lab, "role", "delete", "root")
    snapshot = _backup(lab)
    lab.ok("up")  # puts root back and turns auth on
    with _admin(lab) as client:
        assert client.auth_enabled()  # control: the live cluster has auth on again

    done = lab.ok("restore", str(snapshot), "--yes")
    assert "the snapshot had auth off" in done.out and "auth enabled" in done.out
    with _admin(lab) as client:
        assert client.auth_enabled()
        assert "root" in client.role_names() and "root" in client.user_roles()["root"]
        assert client.password_ok("root", _root_password(lab))
    assert lab.ok("get", "/kept").out == "v\n"


def test_a_snapshots_old_password_of_a_scope_is_set_back_to_dcsctls(lab: LabCluster) -> None:
    """The scope was removed and added again after the backup: its Patroni nodes now hold
    the new password, so the restored user must take it, not the snapshot's."""
    lab.ok("up")
    lab.ok("patroni", "add", "prod")
    password_file = lab.state / "secrets" / "patroni-prod.password"
    old_password = password_file.read_text().strip()
    snapshot = _backup(lab)
    lab.ok("patroni", "remove", "prod", "--yes")
    lab.ok("patroni", "add", "prod")
    new_password = password_file.read_text().strip()
    assert new_password != old_password

    done = lab.ok("restore", str(snapshot), "--yes")
    assert "the snapshot's password of patroni-prod was not dcsctl's" in done.out
    with _admin(lab) as client:
        assert client.password_ok("patroni-prod", new_password)
        assert not client.password_ok("patroni-prod", old_password)
