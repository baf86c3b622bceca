"""No secret leaks: through argv, environment, logs or command output; keys are private."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.support.lab import CliResult, LabCluster

PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _secrets(lab: LabCluster) -> list[bytes]:
    found = [p.read_bytes().strip() for p in (lab.state / "secrets").glob("*.password")]
    assert len(found) >= 2  # root and the Patroni user
    assert all(len(s) >= 24 for s in found)
    return found


def test_a_full_run_leaks_no_secret(lab: LabCluster, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    outputs: list[CliResult] = [
        lab.ok("up"),
        lab.ok("status"),
        lab.ok("env"),
        lab.ok("backup"),
        lab.ok("backup", "list"),
        lab.ok("patroni", "add", "demo"),
        lab.ok("patroni", "config", "demo", "--node", "db-00", "--out", str(bundle)),
        lab.ok("certs", "check"),
        lab.ok("logs", f"{lab.name}-0"),
    ]
    secrets = _secrets(lab)
    text = b"".join((r.out + r.err).encode() for r in outputs)
    pids = [int(p.read_text().split('"pid": ')[1].split(",")[0])
            for p in lab.state.glob("members/*/etcd.pid")]
    assert len(pids) == 3
    for pid in pids:
        text += Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert b"ETCDCTL_PASSWORD" not in environ
        text += environ
    for log in lab.state.glob("members/*/etcd.log"):
        text += log.read_bytes()
    for secret in secrets:
        assert secret not in text
    assert b"PRIVATE KEY" not in text
    # The password is where it belongs, and only there: the 0600 bundle file.
    patroni_password = (lab.state / "secrets" / "patroni-demo.password").read_bytes().strip()
    assert patroni_password in (bundle / "etcd3.yml").read_bytes()


def test_every_key_is_private_and_the_ca_key_stays_home(lab: LabCluster, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    lab.ok("up")
    lab.ok("backup")
    lab.ok("patroni", "add", "demo")
    lab.ok("patroni", "config", "demo", "--node", "db-00", "--out", str(bundle))
    sensitive = [
        p for p in [*lab.state.rglob("*"), *bundle.rglob("*")]
        if p.is_file() and (p.suffix in {".key", ".password", ".db"} or p.name == "etcd3.yml")
    ]
    assert len(sensitive) >= 12
    for path in sensitive:
        assert _mode(path) == PRIVATE_FILE, (path, oct(_mode(path)))
    # Exactly 0700: the directories that hold them, and the cluster's state dir itself.
    holders = {path.parent for path in sensitive} | {lab.state}
    assert {lab.state / "pki", lab.state / "secrets", lab.state / "backups", bundle} <= holders
    for directory in holders:
        assert _mode(directory) == PRIVATE_DIR, (directory, oct(_mode(directory)))
    ca_key = (lab.state / "pki" / "ca.key").read_bytes()
    holders = [p for p in [*lab.state.rglob("*"), *bundle.rglob("*")]
               if p.is_file() and ca_key in p.read_bytes()]
    assert holders == [lab.state / "pki" / "ca.key"]
    # A member's directory holds its own key only: never the CA's, never the admin's.
    admin_key = (lab.state / "pki" / "admin.key").read_bytes()
    for member_dir in lab.state.glob("members/*"):
        for path in member_dir.rglob("*"):
            if path.is_file() and path.name != "etcd.log":
                assert admin_key not in path.read_bytes(), path
