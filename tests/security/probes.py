"""Attack probes against a running lab cluster: each one must be refused.

Shared by tests/security and scripts/reliability-report, which publishes the counts.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dcsctl import pki
from dcsctl.identity import Identity
from dcsctl.spec import KeyType
from tests.conftest import LabCluster


@dataclass(frozen=True)
class Probe:
    name: str
    attempt: Callable[[LabCluster], object]
    """Raises (or returns a non-success) when the cluster refuses it."""


@dataclass(frozen=True)
class ProbeResult:
    name: str
    refused: bool
    detail: str


def _context(ca: Path | None, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    context.check_hostname = False
    if ca is None:
        context.verify_mode = ssl.CERT_NONE  # an attacker does not care who answers
    if cert and key:
        context.load_cert_chain(str(cert), str(key))
    return context


def _https(lab: LabCluster, port: int, path: str, context: ssl.SSLContext,
           body: dict[str, object] | None = None) -> int:
    connection = http.client.HTTPSConnection(lab.addresses()[0], port, context=context,
                                             timeout=5)
    try:
        if body is None:
            connection.request("GET", path)
        else:
            connection.request("POST", path, json.dumps(body),
                               {"Content-Type": "application/json"})
        return connection.getresponse().status
    finally:
        connection.close()


def _expect_refused(status: int) -> None:
    if status == 200:
        raise AssertionError("answered 200")


def _forged(lab: LabCluster, role: pki.Role, common_name: str, *, own_ca: bool,
            expired: bool = False) -> tuple[Path, Path]:
    """A client certificate: from a foreign CA, or from the cluster's CA but expired."""
    now = dt.datetime.now(dt.UTC)
    if own_ca:
        pki_dir = lab.state / "pki"
        ca = Identity((pki_dir / "ca.crt").read_bytes(), (pki_dir / "ca.key").read_bytes())
    else:
        ca = pki.issue_ca("intruder-ca", KeyType.ECDSA_P256, 30, now)
    issued_at = now - dt.timedelta(days=40) if expired else now
    identity = pki.issue(ca, role, common_name=common_name, sans=pki.SubjectAltNames(),
                         key_type=KeyType.ECDSA_P256, days=30, now=issued_at)
    scratch = lab.state.parent / "probe-certs"  # inside the test's own temp dir
    scratch.mkdir(exist_ok=True)
    (scratch / "c.crt").write_bytes(identity.cert_pem)
    (scratch / "c.key").write_bytes(identity.key_pem)
    return scratch / "c.crt", scratch / "c.key"


def _ca(lab: LabCluster) -> Path:
    return lab.state / "pki" / "ca.crt"


def _admin(lab: LabCluster) -> tuple[Path, Path]:
    return lab.state / "pki" / "admin.crt", lab.state / "pki" / "admin.key"


def _plain_http(lab: LabCluster) -> None:
    for address in lab.addresses():
        for port in (2379, 2380):
            connection = http.client.HTTPConnection(address, port, timeout=5)
            try:
                connection.request("GET", "/health")
                status = connection.getresponse().status
            except (ConnectionError, http.client.HTTPException, OSError):
                continue
            finally:
                connection.close()
            if status != 400:  # Go's "client sent an HTTP request to an HTTPS server"
                raise AssertionError(f"{address}:{port} answered plain http with {status}")
    raise ConnectionRefusedError("no port answered plain http")


def _raw_tls_without_cert(lab: LabCluster) -> None:
    context = _context(None)
    with socket.create_connection((lab.addresses()[0], 2379), timeout=5) as raw, \
            context.wrap_socket(raw) as wrapped:
        wrapped.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        if wrapped.recv(100):
            raise AssertionError("answered a client without a certificate")


PROBES: tuple[Probe, ...] = (
    Probe("plain http on every client and peer port", _plain_http),
    Probe("TLS without a client certificate",
          lambda lab: _expect_refused(_https(lab, 2379, "/health", _context(_ca(lab))))),
    Probe("raw TLS without a client certificate, not verifying the server",
          _raw_tls_without_cert),
    Probe("/metrics without a client certificate",
          lambda lab: _expect_refused(_https(lab, 2379, "/metrics", _context(_ca(lab))))),
    Probe("client certificate from a foreign CA",
          lambda lab: _expect_refused(_https(lab, 2379, "/health", _context(
              _ca(lab), *_forged(lab, pki.Role.CLIENT, "someone", own_ca=False))))),
    Probe("foreign CA's certificate with CN=root",
          lambda lab: _expect_refused(_https(lab, 2379, "/v3/kv/range", _context(
              _ca(lab), *_forged(lab, pki.Role.ADMIN, "root", own_ca=False)), {"key": "Lw=="}))),
    Probe("expired certificate from the cluster's own CA with CN=root",
          lambda lab: _expect_refused(_https(lab, 2379, "/health", _context(
              _ca(lab), *_forged(lab, pki.Role.ADMIN, "root", own_ca=True, expired=True))))),
    Probe("admin client certificate on the peer port",
          lambda lab: _expect_refused(_https(lab, 2380, "/members",
                                             _context(_ca(lab), *_admin(lab))))),
    Probe("wrong root password on the JSON gateway",
          lambda lab: _expect_refused(_https(lab, 2379, "/v3/auth/authenticate", _context(
              _ca(lab), *_forged(lab, pki.Role.CLIENT, "", own_ca=True)),
              {"name": "root", "password": "not-the-password"}))),
)


def run_probes(lab: LabCluster, probes: Sequence[Probe] = PROBES) -> list[ProbeResult]:
    results = []
    for probe in probes:
        try:
            probe.attempt(lab)
        except (ssl.SSLError, ConnectionError, OSError, http.client.HTTPException) as exc:
            results.append(ProbeResult(probe.name, True, type(exc).__name__))
        except AssertionError as exc:
            results.append(ProbeResult(probe.name, False, str(exc)))
        else:
            results.append(ProbeResult(probe.name, True, "refused by the server's answer"))
    return results
