"""Certificates as values: profiles are a table, issuing returns PEM bytes, nothing is written.

Who holds what (docs/guide-defects.md 6, 7): the CA key stays in the control machine's state dir;
a member gets only its own key and certificate; admin access is a separate client
certificate with CN=root that never leaves the control machine.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dcsctl.identity import Identity
from dcsctl.spec import KeyType

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# Backdating absorbs small clock skew between the control machine and the members.
BACKDATE = dt.timedelta(minutes=5)


class Role(enum.StrEnum):
    CA = "ca"
    MEMBER = "member"
    ADMIN = "admin"
    CLIENT = "client"


@dataclass(frozen=True)
class Profile:
    role: Role
    server_auth: bool
    client_auth: bool
    why: str


PROFILES: dict[Role, Profile] = {
    Role.CA: Profile(Role.CA, False, False, "signs every other certificate; key never leaves"),
    # etcd dials its peers with the same certificate it serves with, so a member needs
    # both EKUs (etcd rejects a server cert without clientAuth on the peer port).
    Role.MEMBER: Profile(Role.MEMBER, True, True, "serves clients and peers, dials peers"),
    # CN=root: etcd maps a client certificate's CN to the etcd user, so this is
    # password-free admin access; kept only on the control machine.
    Role.ADMIN: Profile(Role.ADMIN, False, True, "admin client identity (etcd user root)"),
    Role.CLIENT: Profile(Role.CLIENT, False, True, "application client (e.g. Patroni)"),
}


@dataclass(frozen=True)
class SubjectAltNames:
    dns: tuple[str, ...] = ()
    ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()


def new_private_key(key_type: KeyType) -> PrivateKey:
    if key_type is KeyType.ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    bits = {KeyType.RSA_2048: 2048, KeyType.RSA_4096: 4096}[key_type]
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _load_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("only ECDSA and RSA keys are supported")
    return key


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str | None, organization: str | None = None) -> x509.Name:
    attributes = []
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    if common_name:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _validity(
    builder: x509.CertificateBuilder, now: dt.datetime, days: int
) -> x509.CertificateBuilder:
    return builder.not_valid_before(now - BACKDATE).not_valid_after(now + dt.timedelta(days=days))


def issue_ca(common_name: str, key_type: KeyType, days: int, now: dt.datetime) -> Identity:
    key = new_private_key(key_type)
    subject = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    cert = _validity(builder, now, days).sign(key, hashes.SHA256())
    return Identity(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue(
    ca: Identity,
    role: Role,
    *,
    common_name: str | None,
    sans: SubjectAltNames,
    key_type: KeyType,
    days: int,
    now: dt.datetime,
    organization: str | None = None,
    key_pem: bytes | None = None,
) -> Identity:
    """Issue a leaf certificate of `role`'s profile, signed by `ca`.

    With `key_pem` the certificate is for that existing key (a certificate-only renewal).
    """
    profile = PROFILES[role]
    if role is Role.CA:
        raise ValueError("use issue_ca for a CA")
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = _load_key(ca.key_pem)
    key = _load_key(key_pem) if key_pem is not None else new_private_key(key_type)
    usages = [
        oid
        for oid, wanted in (
            (ExtendedKeyUsageOID.SERVER_AUTH, profile.server_auth),
            (ExtendedKeyUsageOID.CLIENT_AUTH, profile.client_auth),
        )
        if wanted
    ]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in sans.dns]
    names += [x509.IPAddress(ip) for ip in sans.ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = _validity(builder, now, days).sign(ca_key, hashes.SHA256())
    return Identity(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@dataclass(frozen=True)
class JwtKeys:
    """The key pair etcd signs its auth tokens with (shared by every member)."""

    private_pem: bytes
    public_pem: bytes
    sign_method: str


def jwt_sign_method(key_type: KeyType) -> str:
    return "ES256" if key_type is KeyType.ECDSA_P256 else "RS256"


def jwt_keys(key_type: KeyType) -> JwtKeys:
    key = new_private_key(key_type)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return JwtKeys(_key_pem(key), public, jwt_sign_method(key_type))


@dataclass(frozen=True)
class Revocation:
    """One revoked certificate: its serial, when, and whose it was (for the operator)."""

    serial: int
    revoked_at: dt.datetime
    holder: str


def revocation_list(
    ca: Identity, revoked: Sequence[Revocation], *, now: dt.datetime, days: int
) -> bytes:
    """A CRL signed by `ca`, DER-encoded: etcd 3.5 parses DER or PEM, but 3.6+ uses Go's
    x509.ParseRevocationList, which reads DER only. etcd matches serials only (it checks
    neither the signature nor nextUpdate); the signature is for every other reader."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - BACKDATE)
        .next_update(now + dt.timedelta(days=days))
    )
    for entry in sorted(revoked, key=lambda r: r.serial):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
            .build()
        )
    crl = builder.sign(_load_key(ca.key_pem), hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.DER)


def revoked_serials(crl_der: bytes) -> frozenset[int]:
    return frozenset(int(entry.serial_number) for entry in x509.load_der_x509_crl(crl_der))


def crl_signed_by(crl_der: bytes, ca_pem: bytes) -> bool:
    public = x509.load_pem_x509_certificate(ca_pem).public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return False
    return x509.load_der_x509_crl(crl_der).is_signature_valid(public)


def holder_name(cert_pem: bytes) -> str:
    """Who a certificate was issued to: its CN, else its organization (Patroni certs)."""
    subject = x509.load_pem_x509_certificate(cert_pem).subject
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        if values := subject.get_attributes_for_oid(oid):
            return str(values[0].value)
    return ""


def serial_number(cert_pem: bytes) -> int:
    return int(x509.load_pem_x509_certificate(cert_pem).serial_number)


@dataclass(frozen=True)
class CertificateFacts:
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    server_auth: bool
    client_auth: bool

    def days_left(self, now: dt.datetime) -> int:
        return (self.not_after - now).days


def inspect(cert_pem: bytes) -> CertificateFacts:
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    try:
        eku = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        eku = []
    return CertificateFacts(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        dns_names=dns,
        ip_addresses=ips,
        server_auth=ExtendedKeyUsageOID.SERVER_AUTH in eku,
        client_auth=ExtendedKeyUsageOID.CLIENT_AUTH in eku,
    )


def is_issued_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def key_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(
        cert.public_key().public_bytes(serialization.Encoding.PEM, spki)
        == key.public_key().public_bytes(serialization.Encoding.PEM, spki)
    )

