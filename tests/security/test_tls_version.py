"""TLS 1.3 only on the client and peer ports; dcsctl's own gRPC client still works.

Each refusal is paired with its control: the same certificate and request over TLS 1.3
is answered, so the refusal is the version's doing.
"""

from __future__ import annotations

import ssl

import pytest

from tests.security.probes import Verdict, _admin, _ca, _context, _https
from tests.support.lab import LabCluster


def _with_version(lab: LabCluster, version: ssl.TLSVersion, *, member: bool) -> ssl.SSLContext:
    if member:
        tls = lab.state / "members" / f"{lab.name}-0" / "tls"
        context = _context(_ca(lab), tls / "member.crt", tls / "member.key")
    else:
        context = _context(_ca(lab), *_admin(lab))
    context.minimum_version = context.maximum_version = version
    return context


@pytest.mark.parametrize(("port", "path"), [(2379, "/health"), (2380, "/members")],
                         ids=["client port", "peer port"])
def test_a_tls12_only_client_is_refused(running_lab: LabCluster, port: int, path: str) -> None:
    member = port == 2380  # the peer port takes member certificates only
    tls13 = _with_version(running_lab, ssl.TLSVersion.TLSv1_3, member=member)
    assert _https(running_lab, port, path, tls13).verdict is Verdict.ACCEPTED  # control
    tls12 = _with_version(running_lab, ssl.TLSVersion.TLSv1_2, member=member)
    refused = _https(running_lab, port, path, tls12)
    assert refused.verdict is Verdict.REFUSED, refused
    assert "PROTOCOL_VERSION" in refused.detail.upper(), refused


def test_dcsctls_grpc_client_works_over_tls13(running_lab: LabCluster) -> None:
    # Every call below goes through etcd3aio over grpcio to a TLS 1.3-only cluster.
    running_lab.ok("put", "/tls13", "ok")
    assert running_lab.ok("get", "/tls13").out == "ok\n"
    assert running_lab.ok("status", "--json").json()["healthy"] is True


def test_the_rendered_configuration_asks_for_tls13(running_lab: LabCluster) -> None:
    env = (running_lab.state / "members" / f"{running_lab.name}-0" / "etcd.env").read_text()
    assert "ETCD_TLS_MIN_VERSION='TLS1.3'" in env
