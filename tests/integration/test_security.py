"""What a lab cluster lets in and what it leaks: probes against real etcd over TLS."""

from __future__ import annotations

import datetime as dt
import http.client
import socket
import ssl
import stat
from pathlib import Path

import pytest

from dcsctl import pki
from dcsctl.spec import KeyType
from tests.conftest import LabCluster


@pytest.fixture
def running(running_lab: LabCluster) -> LabCluster:
    return running_lab


def _https_get(
    address: str, port: int, ca: Path, cert: Path | None = None, key: Path | None = None,
    path: str = "/health",
) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False
    if cert and key:
        context.load_cert_chain(str(cert), str(key))
    connection = http.client.HTTPSConnection(address, port, context=context, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def _refused(call: object) -> bool:
    assert callable(call)
    try:
        call()
    except (ssl.SSLError, ConnectionError, OSError, http.client.HTTPException):
        return True
    return False


def test_no_port_answers_plain_http(running: LabCluster) -> None:
    for address in running.addresses():
        for port in (2379, 2380):
            connection = http.client.HTTPConnection(address, port, timeout=5)
            try:
                connection.request("GET", "/health")
                status = connection.getresponse().status
            except (ConnectionError, http.client.HTTPException, OSError):
                continue
            finally:
                connection.close()
            # etcd answers plain http on a TLS port with a 400 "client sent an HTTP
            # request to an HTTPS server" at most: never the health document.
            assert status == 400, f"{address}:{port} answered plain http with {status}"


def test_admin_cert_is_accepted_and_missing_or_foreign_certs_refused(
    running: LabCluster, tmp_path: Path
) -> None:
    pki_dir = running.state / "pki"
    ca, admin_cert, admin_key = pki_dir / "ca.crt", pki_dir / "admin.crt", pki_dir / "admin.key"
    address = running.addresses()[0]
    assert _https_get(address, 2379, ca, admin_cert, admin_key) == 200

    assert _refused(lambda: _https_get(address, 2379, ca))  # no client certificate

    now = dt.datetime.now(dt.UTC)
    foreign_ca = pki.issue_ca("intruder-ca", KeyType.ECDSA_P256, 30, now)
    # The most dangerous forgery: a foreign CA's certificate claiming CN=root.
    forged = pki.issue(foreign_ca, pki.Role.ADMIN, common_name="root",
                       sans=pki.SubjectAltNames(), key_type=KeyType.ECDSA_P256, days=30, now=now)
    (tmp_path / "f.crt").write_bytes(forged.cert_pem)
    (tmp_path / "f.key").write_bytes(forged.key_pem)
    assert _refused(lambda: _https_get(address, 2379, ca, tmp_path / "f.crt", tmp_path / "f.key"))


def test_admin_client_cert_is_refused_on_the_peer_port(running: LabCluster) -> None:
    pki_dir = running.state / "pki"
    address = running.addresses()[0]
    probe = lambda: _https_get(  # noqa: E731
        address, 2380, pki_dir / "ca.crt", pki_dir / "admin.crt", pki_dir / "admin.key",
        path="/members",
    )
    assert _refused(probe)


def test_keys_are_private_and_the_ca_key_stays_in_the_state_pki(running: LabCluster) -> None:
    keys = [p for p in running.state.rglob("*") if p.suffix == ".key" or p.name == "root.password"]
    assert len(keys) >= 2 + 2 * 3  # ca, admin, jwt + member + jwt per member, password
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    ca_key = (running.state / "pki" / "ca.key").read_bytes()
    holders = [p for p in running.state.rglob("*") if p.is_file() and p.read_bytes() == ca_key]
    assert holders == [running.state / "pki" / "ca.key"]


def test_no_secret_in_any_etcd_process_argv_or_environment(running: LabCluster) -> None:
    password = (running.state / "secrets" / "root.password").read_text().strip()
    assert len(password) >= 24
    pids = [int(p.read_text().split('"pid": ')[1].split(",")[0])
            for p in running.state.glob("members/*/etcd.pid")]
    assert len(pids) == 3
    for pid in pids:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert password.encode() not in cmdline + environ
        assert b"ETCDCTL_PASSWORD" not in environ and b"PRIVATE KEY" not in environ
    status = running.ok("status")
    env = running.ok("env")
    assert password not in status.out + status.err + env.out
    for log in running.state.glob("members/*/etcd.log"):
        assert password not in log.read_text()


def test_listens_only_on_member_addresses(running: LabCluster) -> None:
    # A listener on 0.0.0.0 (the guide's, lab-defects.md 3) would make these binds fail
    # with EADDRINUSE: Linux refuses a specific bind under a listening wildcard socket.
    neighbour = running.addresses()[0].rsplit(".", 1)[0] + ".200"
    for port in (2379, 2380):
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            other.bind((neighbour, port))
