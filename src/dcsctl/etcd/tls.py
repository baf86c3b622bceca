"""TLS to etcd's client port outside gRPC: the SSL context dcsctl presents (cluster CA,
admin certificate) and the HTTPS probes etcd answers there — the certificate a member
serves, its /metrics page, its /version."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ClientTls:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    # Every member cert carries this DNS name, so one name verifies any member.
    server_name: str


def _ssl_context(tls: ClientTls) -> ssl.SSLContext:
    """A client context trusting the cluster CA and presenting the admin certificate.

    The ssl module loads keys only from files: the key goes through a private temporary
    directory for the moment it takes to load it."""
    context = ssl.create_default_context(cadata=tls.ca_pem.decode())
    context.check_hostname = False  # members are checked against the CA, by address
    with tempfile.TemporaryDirectory() as scratch:
        cert, key = Path(scratch) / "c.pem", Path(scratch) / "k.pem"
        cert.write_bytes(tls.cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(tls.key_pem)
        context.load_cert_chain(str(cert), str(key))
    return context


def client_context(tls: ClientTls) -> ssl.SSLContext:
    """The same context for other HTTPS clients of the members (the JSON gateway)."""
    return _ssl_context(tls)


def served_certificate(endpoint: str, tls: ClientTls, *, timeout: float = 5.0) -> bytes:
    """The certificate (PEM) a member presents on a fresh TLS connection right now."""
    parts = urlsplit(endpoint)
    context = _ssl_context(tls)
    with socket.create_connection((parts.hostname, parts.port or 2379), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=tls.server_name) as wrapped:
        der = wrapped.getpeercert(binary_form=True)
    if der is None:  # only without a handshake, which wrap_socket has done
        raise OSError(f"{endpoint} presented no certificate")
    return ssl.DER_cert_to_PEM_cert(der).encode()


def _https_get(endpoint: str, tls: ClientTls, path: str, *, timeout: float) -> str:
    """GET a page of a member's client port over TLS with the cluster CA and a client
    cert (etcdctl check datascale forgets the CA here: docs/guide-defects.md 15)."""
    parts = urlsplit(endpoint)
    context = _ssl_context(tls)
    connection = http.client.HTTPSConnection(parts.hostname or "", parts.port or 2379,
                                             context=context, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        if response.status != 200:
            raise OSError(f"{path} answered {response.status}")
        return response.read().decode(errors="replace")
    finally:
        connection.close()


def metrics_text(endpoint: str, tls: ClientTls, *, timeout: float = 5.0) -> str:
    """A member's Prometheus /metrics page."""
    return _https_get(endpoint, tls, "/metrics", timeout=timeout)


def cluster_version(endpoint: str, tls: ClientTls, *, timeout: float = 5.0) -> str:
    """The cluster version a member reports on /version (e.g. "3.6.0"): the lowest
    minor every member runs, or a downgrade's target; "not_decided" while starting."""
    answer = json.loads(_https_get(endpoint, tls, "/version", timeout=timeout))
    return str(answer.get("etcdcluster", ""))


def peer_members(peer_url: str, tls: ClientTls, *, timeout: float = 5.0) -> str:
    """The member list a member serves on its peer port (/members), which it answers only
    once its peer server runs: etcd's TLS listener completes handshakes before that, so a
    handshake alone proves nothing."""
    return _https_get(peer_url, tls, "/members", timeout=timeout)
