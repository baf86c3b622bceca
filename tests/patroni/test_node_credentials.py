"""How a running Patroni 4.1.5 takes in new etcd3 TLS files, measured on a real primary.

The finding dcsctl's deploy is built on (src/dcsctl/patroni_node.py): a reload does not
make Patroni use new files; files replaced at the same paths are read by the next new
connection; aborting Patroni's connections to etcd (`ss -K`) makes it open new ones at
once, with no restart of Patroni or PostgreSQL. A certificate etcd does not trust is the
positive control: it shows which files a connection really presented.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dcsctl import pki
from dcsctl.files import atomic_write
from dcsctl.hosts.local import LocalHost
from dcsctl.ops.patroni_nodes import reconnect, seen_after
from dcsctl.patroni_node import Endpoint
from dcsctl.patroni_rest import PatroniApi
from dcsctl.spec import KeyType
from tests.patroni.harness import (
    OS_USER,
    PATRONI_BIN,
    PatroniNode,
    RoleSampler,
    patroni_node,
)
from tests.support import poll
from tests.support.lab import LabCluster

# ttl, loop_wait, retry_timeout: a short loop so dcs_last_seen moves every ~2 s; a node
# that cannot reach etcd for retry_timeout demotes, so each bad window stays short.
TIMING = (30, 2, 10)


@pytest.fixture
def node_dir() -> Iterator[Path]:
    """A bundle directory Patroni (the postgres user) can traverse: outside pytest's 0700
    tmp dirs, as /etc/patroni/etcd is on a database host."""
    path = Path(tempfile.mkdtemp(prefix="dcsctl-node-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _deploy_locally(source: Path, target: Path, node: str) -> Path:
    """The bundle at `target`, owned by postgres, with its etcd3.yml pointing there."""
    import pwd

    user = pwd.getpwnam(OS_USER)
    for name in ("ca.crt", f"{node}.crt", f"{node}.key"):
        shutil.copy(source / name, target / name)
    section = yaml.safe_load((source / "etcd3.yml").read_text())
    etcd3 = section["etcd3"]
    etcd3.update(cacert=str(target / "ca.crt"), cert=str(target / f"{node}.crt"),
                 key=str(target / f"{node}.key"))
    (target / "etcd3.yml").write_text(yaml.safe_dump(section))
    for path in target.iterdir():
        os.chown(path, user.pw_uid, user.pw_gid)
    (target / "etcd3.yml").chmod(0o600)
    (target / f"{node}.key").chmod(0o600)
    return target / "etcd3.yml"


def _replace(path: Path, content: bytes, mode: int) -> None:
    """Atomic replace at the same path (rename over it), owner kept as postgres."""
    import pwd

    user = pwd.getpwnam(OS_USER)
    atomic_write(path, content, mode)
    os.chown(path, user.pw_uid, user.pw_gid)


def _log_since(node: PatroniNode, start: int) -> list[str]:
    return node.log_tail(100_000).splitlines()[start:]


def _tls_refusals_since(node: PatroniNode, start: int, timeout: float = 20) -> list[str]:
    """The TLS errors Patroni logged after line `start`, once there are any (20 s: its
    retries come every few seconds); none at all after that is an answer too."""
    def refusals() -> list[str] | None:
        return [line for line in _log_since(node, start)
                if "SSL" in line or "certificate" in line.lower()] or None

    try:
        return poll(refusals, timeout, "a TLS error in Patroni's log", interval=0.2)
    except TimeoutError:
        return []


def test_patroni_reads_tls_files_per_new_connection_not_on_reload(
    lab: LabCluster, tmp_path: Path, node_dir: Path
) -> None:
    if not (PATRONI_BIN / "patroni").exists():
        pytest.fail("Patroni is not installed in .tools/patroni: run scripts/setup")
    lab.ok("up")
    lab.ok("patroni", "add", "demo")
    lab.ok("patroni", "config", "demo", "--node", "pg0", "--out", str(tmp_path / "bundle"))
    etcd3_file = _deploy_locally(tmp_path / "bundle", node_dir, "pg0")
    good_cert = (node_dir / "pg0.crt").read_bytes()
    good_key = (node_dir / "pg0.key").read_bytes()
    # The positive control: a client certificate from a CA etcd has never seen.
    now = pki.inspect(good_cert).not_before
    stranger = pki.issue_ca("not-this-cluster", KeyType.ECDSA_P256, 30, now)
    foreign = pki.issue(stranger, pki.Role.CLIENT, common_name=None, organization="x",
                        sans=pki.SubjectAltNames(), key_type=KeyType.ECDSA_P256, days=30,
                        now=now)
    address = lab.addresses()[0].rsplit(".", 1)[0] + ".50"
    etcd = [Endpoint(a, 2379) for a in lab.addresses()]
    with patroni_node("demo", "pg0", address, None, None, etcd3_file=etcd3_file,
                      timing=TIMING) as node:
        try:
            node.wait_primary()
        except TimeoutError:
            pytest.fail(f"Patroni never became primary:\n{node.log_tail()}")
        api = PatroniApi("pg0", node.api)
        rest = Endpoint(address, 8008)
        started = api.state().state.postmaster_start_time
        assert node.process is not None
        pid = node.process.pid
        with RoleSampler(node) as sampler:
            # 1. Foreign files at the same paths, then a reload: Patroni goes on, on the
            #    connections it has (nothing new is opened, so nothing is refused).
            _replace(node_dir / "pg0.key", foreign.key_pem, 0o600)
            _replace(node_dir / "pg0.crt", foreign.cert_pem, 0o644)
            reloaded_at = api.state().node_time or 0
            api.reload()
            seen_after(api, reloaded_at + 2, timeout=30)  # two more good DCS reads

            # 2. Aborting its connections makes it open new ones, with the files on disk:
            #    etcd refuses the foreign certificate.
            mark = len(node.log_tail(100_000).splitlines())
            done = reconnect(LocalHost(), "pg0", api, rest, etcd)
            assert done.pid == pid and done.aborted >= 1
            refused = _tls_refusals_since(node, mark)
            stalled = api.state().state.dcs_last_seen

            # 3. The good files back at the same paths: the retries pick them up by
            #    themselves (every new connection reads them), no restart.
            _replace(node_dir / "pg0.key", good_key, 0o600)
            _replace(node_dir / "pg0.crt", good_cert, 0o644)
            back = seen_after(api, max(stalled or 0, done.node_time), timeout=20)

            # 4. A new path is not taken by a reload: Patroni keeps the path it started
            #    with (its PoolManager holds it), so moving the files away breaks it.
            moved = node_dir / "moved"
            moved.mkdir()
            for name in ("ca.crt", "pg0.crt", "pg0.key"):
                shutil.copy2(node_dir / name, moved / name)
                os.chown(moved / name, os.stat(node_dir / name).st_uid,
                         os.stat(node_dir / name).st_gid)
            section = yaml.safe_load(etcd3_file.read_text())
            section["etcd3"].update(cacert=str(moved / "ca.crt"), cert=str(moved / "pg0.crt"),
                                    key=str(moved / "pg0.key"))
            _replace(etcd3_file, yaml.safe_dump(section).encode(), 0o600)
            _replace(node_dir / "pg0.crt", foreign.cert_pem, 0o644)
            _replace(node_dir / "pg0.key", foreign.key_pem, 0o600)
            api.reload()
            seen_after(api, api.state().node_time or 0, timeout=30)
            mark = len(node.log_tail(100_000).splitlines())
            reconnect(LocalHost(), "pg0", api, rest, etcd)
            refused_again = _tls_refusals_since(node, mark)
            _replace(node_dir / "pg0.key", good_key, 0o600)
            _replace(node_dir / "pg0.crt", good_cert, 0o644)
            seen_after(api, api.state().node_time or 0, timeout=20)
        log = "\n".join(node.log_tail(60).splitlines())
        assert refused, f"the foreign certificate was never presented:\n{log}"
        assert stalled is not None and back.state.dcs_last_seen is not None
        assert refused_again, f"the reload took the new path:\n{log}"
        assert sampler.never_demoted(), sampler.roles
        assert node.process.pid == pid and node.process.poll() is None
        assert api.state().state.postmaster_start_time == started  # PostgreSQL never restarted
