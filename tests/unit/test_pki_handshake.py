"""Certificates proven with real TLS handshakes (Python's ssl, over a socket pair)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

import pytest

from dcsctl import pki
from dcsctl.spec import KeyType

# Issued "now": the handshakes below check validity against the real clock.
NOW = dt.datetime.now(dt.UTC)
MEMBER_IP = ipaddress.IPv4Address("127.0.0.10")


def _files(tmp: Path, name: str, identity: pki.Identity) -> tuple[str, str]:
    cert, key = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert.write_bytes(identity.cert_pem)
    key.write_bytes(identity.key_pem)
    return str(cert), str(key)


def _handshake(
    tmp: Path, *, server: pki.Identity, server_ca: pki.Identity, client: pki.Identity | None,
    client_trusts: pki.Identity, server_name: str,
) -> str | None:
    """Run one mutual-TLS handshake; return the client CN the server saw (None if none)."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(*_files(tmp, "server", server))
    server_context.load_verify_locations(cadata=server_ca.cert_pem.decode())
    server_context.verify_mode = ssl.CERT_REQUIRED
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.load_verify_locations(cadata=client_trusts.cert_pem.decode())
    if client is not None:
        client_context.load_cert_chain(*_files(tmp, "client", client))
    left, right = socket.socketpair()
    seen: dict[str, object] = {}

    def serve() -> None:
        try:
            with server_context.wrap_socket(left, server_side=True) as tls:
                peer = tls.getpeercert()
                subject = dict(item[0] for item in peer["subject"]) if peer else {}
                seen["cn"] = subject.get("commonName")
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            seen["error"] = exc

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_context.wrap_socket(right, server_hostname=server_name) as tls:
            assert tls.recv(2) == b"ok"
    finally:
        thread.join(timeout=10)
    if "error" in seen:
        raise ssl.SSLError(str(seen["error"]))
    cn = seen.get("cn")
    return cn if isinstance(cn, str) else None


@pytest.fixture(scope="module", params=[KeyType.ECDSA_P256, KeyType.RSA_2048])
def key_type(request: pytest.FixtureRequest) -> KeyType:
    value = request.param
    assert isinstance(value, KeyType)
    return value


@pytest.fixture(scope="module")
def ca(key_type: KeyType) -> pki.Identity:
    return pki.issue_ca("dcs-ca", key_type, 3650, NOW)


@pytest.fixture(scope="module")
def member(ca: pki.Identity, key_type: KeyType) -> pki.Identity:
    sans = pki.SubjectAltNames(
        dns=("dcs-00", "dcs-00.patroni.mydomain", "dcs.patroni.mydomain"), ips=(MEMBER_IP,)
    )
    return pki.issue(ca, pki.Role.MEMBER, common_name="dcs-00", sans=sans,
                     key_type=key_type, days=365, now=NOW)


@pytest.fixture(scope="module")
def admin(ca: pki.Identity, key_type: KeyType) -> pki.Identity:
    return pki.issue(ca, pki.Role.ADMIN, common_name="root", sans=pki.SubjectAltNames(),
                     key_type=key_type, days=365, now=NOW)


@pytest.fixture(scope="module")
def foreign_ca(key_type: KeyType) -> pki.Identity:
    return pki.issue_ca("intruder-ca", key_type, 30, NOW)


def test_admin_cert_authenticates_to_a_member_as_root(
    tmp_path: Path, ca: pki.Identity, member: pki.Identity, admin: pki.Identity
) -> None:
    cn = _handshake(tmp_path, server=member, server_ca=ca, client=admin, client_trusts=ca,
                    server_name="dcs.patroni.mydomain")
    assert cn == "root"


@pytest.mark.parametrize("name", ["dcs-00", "dcs-00.patroni.mydomain", "dcs.patroni.mydomain",
                                  "127.0.0.10"])
def test_member_cert_verifies_for_each_of_its_names(
    tmp_path: Path, ca: pki.Identity, member: pki.Identity, admin: pki.Identity, name: str
) -> None:
    assert _handshake(tmp_path, server=member, server_ca=ca, client=admin, client_trusts=ca,
                      server_name=name) == "root"


def test_member_cert_does_not_verify_for_another_name(
    tmp_path: Path, ca: pki.Identity, member: pki.Identity, admin: pki.Identity
) -> None:
    with pytest.raises(ssl.SSLError):
        _handshake(tmp_path, server=member, server_ca=ca, client=admin, client_trusts=ca,
                   server_name="dcs-01")


def test_client_cert_from_a_foreign_ca_is_refused(
    tmp_path: Path, ca: pki.Identity, member: pki.Identity, foreign_ca: pki.Identity,
    key_type: KeyType,
) -> None:
    forged = pki.issue(foreign_ca, pki.Role.ADMIN, common_name="root",
                       sans=pki.SubjectAltNames(), key_type=key_type, days=30, now=NOW)
    with pytest.raises((ssl.SSLError, OSError)):
        _handshake(tmp_path, server=member, server_ca=ca, client=forged, client_trusts=ca,
                   server_name="dcs-00")


def test_server_from_a_foreign_ca_is_refused_by_the_client(
    tmp_path: Path, ca: pki.Identity, admin: pki.Identity, foreign_ca: pki.Identity,
    key_type: KeyType,
) -> None:
    impostor = pki.issue(foreign_ca, pki.Role.MEMBER, common_name="dcs-00",
                         sans=pki.SubjectAltNames(dns=("dcs-00",)), key_type=key_type,
                         days=30, now=NOW)
    with pytest.raises((ssl.SSLError, OSError)):
        _handshake(tmp_path, server=impostor, server_ca=ca, client=admin, client_trusts=ca,
                   server_name="dcs-00")


def test_a_missing_client_cert_is_refused(
    tmp_path: Path, ca: pki.Identity, member: pki.Identity
) -> None:
    with pytest.raises((ssl.SSLError, OSError)):
        _handshake(tmp_path, server=member, server_ca=ca, client=None, client_trusts=ca,
                   server_name="dcs-00")


def test_profiles_carry_the_right_usages(member: pki.Identity, admin: pki.Identity,
                                         ca: pki.Identity) -> None:
    member_facts, admin_facts = pki.inspect(member.cert_pem), pki.inspect(admin.cert_pem)
    # etcd dials peers with its serving certificate: a member needs both EKUs.
    assert member_facts.server_auth and member_facts.client_auth
    assert admin_facts.client_auth and not admin_facts.server_auth
    lifetime = member_facts.not_after - member_facts.not_before
    assert lifetime == dt.timedelta(days=365) + pki.BACKDATE
    assert pki.is_issued_by(member.cert_pem, ca.cert_pem)
    assert pki.key_matches(member.cert_pem, member.key_pem)
    assert not pki.key_matches(member.cert_pem, admin.key_pem)


def test_certificate_renewal_keeps_the_key(ca: pki.Identity, member: pki.Identity,
                                           key_type: KeyType) -> None:
    renewed = pki.issue(ca, pki.Role.MEMBER, common_name="dcs-00",
                        sans=pki.SubjectAltNames(dns=("dcs-00",)), key_type=key_type,
                        days=365, now=NOW, key_pem=member.key_pem)
    assert renewed.key_pem == member.key_pem
    assert pki.key_matches(renewed.cert_pem, member.key_pem)
    assert pki.serial_number(renewed.cert_pem) != pki.serial_number(member.cert_pem)


def test_patroni_client_cert_has_no_common_name(ca: pki.Identity, key_type: KeyType) -> None:
    # etcd's JSON gateway rejects client certificates with a CN once auth is on.
    client = pki.issue(ca, pki.Role.CLIENT, common_name=None, organization="patroni-demo",
                       sans=pki.SubjectAltNames(), key_type=key_type, days=30, now=NOW)
    facts = pki.inspect(client.cert_pem)
    assert "CN=" not in facts.subject and facts.subject == "O=patroni-demo"
    assert facts.client_auth and not facts.server_auth


def test_crl_lists_the_revoked_serials_signed_by_its_ca(
    ca: pki.Identity, member: pki.Identity, admin: pki.Identity, foreign_ca: pki.Identity
) -> None:
    revoked = [pki.Revocation(pki.serial_number(member.cert_pem), NOW, "dcs-00")]
    crl = pki.revocation_list(ca, revoked, now=NOW, days=365)
    assert crl.startswith(b"\x30")  # DER: etcd 3.6+ parses nothing else
    assert pki.revoked_serials(crl) == {pki.serial_number(member.cert_pem)}
    assert pki.serial_number(admin.cert_pem) not in pki.revoked_serials(crl)
    assert pki.crl_signed_by(crl, ca.cert_pem)
    assert not pki.crl_signed_by(crl, foreign_ca.cert_pem)
    assert pki.revoked_serials(pki.revocation_list(ca, [], now=NOW, days=1)) == frozenset()


def test_holder_name_is_the_cn_else_the_organization(
    ca: pki.Identity, member: pki.Identity, key_type: KeyType
) -> None:
    patroni = pki.issue(ca, pki.Role.CLIENT, common_name=None, organization="patroni-demo",
                        sans=pki.SubjectAltNames(), key_type=key_type, days=1, now=NOW)
    assert pki.holder_name(member.cert_pem) == "dcs-00"
    assert pki.holder_name(patroni.cert_pem) == "patroni-demo"
