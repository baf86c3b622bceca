"""Certificates held by the control machine: issue what is missing, keep what is right."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from dcsctl import pki
from dcsctl.identity import Identity
from dcsctl.ops import revocation
from dcsctl.ops.cluster import Cluster
from dcsctl.spec import ClusterSpec, Member
from dcsctl.state import PRIVATE, PUBLIC, ClusterDir
from dcsctl.workflow import UNCHANGED

LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
RENEW_BEFORE = dt.timedelta(days=30)


def member_sans(spec: ClusterSpec, member: Member) -> pki.SubjectAltNames:
    dns = [member.name]
    if fqdn := spec.fqdn(member):
        dns.append(fqdn)
    dns.append(spec.shared_dns_name)
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [member.address]
    # On loopback a member dialing 127.0.0.11 connects FROM 127.0.0.1, and etcd checks a
    # peer cert's IP SANs against the source address: such certs must carry 127.0.0.1.
    if member.address.is_loopback and member.address != LOOPBACK:
        ips.append(LOOPBACK)
    return pki.SubjectAltNames(dns=tuple(dns), ips=tuple(ips))


def _still_good(
    identity: Identity | None, ca: Identity, sans: pki.SubjectAltNames, now: dt.datetime
) -> bool:
    if identity is None:
        return False
    facts = pki.inspect(identity.cert_pem)
    return (
        pki.is_issued_by(identity.cert_pem, ca.cert_pem)
        and pki.key_matches(identity.cert_pem, identity.key_pem)
        and set(facts.dns_names) == set(sans.dns)
        and set(facts.ip_addresses) == {str(ip) for ip in sans.ips}
        and not due_for_renewal(facts, now)
    )


def due_for_renewal(facts: pki.CertificateFacts, now: dt.datetime) -> bool:
    """30 days before its end, or at two thirds of a shorter lifetime: the one renewal
    window of every certificate dcsctl issues (members, admin, monitoring, Patroni nodes)."""
    lifetime = facts.not_after - facts.not_before
    return facts.not_after - now <= min(RENEW_BEFORE, lifetime / 3)


@dataclass(frozen=True)
class PkiPlan:
    """What ensure_pki would change; empty when the PKI is complete and valid."""

    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


def _jwt_present(directory: ClusterDir) -> bool:
    private, public = directory.jwt()
    return private.exists() and public.exists()


def plan_pki(cluster: Cluster, now: dt.datetime) -> PkiPlan:
    directory, spec = cluster.dir, cluster.spec
    ca = directory.ca()
    if ca is None:
        return PkiPlan(("ca", "admin", "jwt", "crl", *(m.name for m in spec.members)))
    missing = []
    if not _still_good(directory.admin(), ca, pki.SubjectAltNames(), now):
        missing.append("admin")
    if not _jwt_present(directory):
        missing.append("jwt")
    if not revocation.crl_current(cluster, ca):
        missing.append("crl")
    for member in spec.members:
        layout = directory.layout(member.name)
        identity = directory.load_identity(Path(layout.cert), Path(layout.key))
        if not _still_good(identity, ca, member_sans(spec, member), now) or not all(
            Path(path).exists() for path in (layout.ca_cert, layout.crl)
        ):
            missing.append(member.name)
    return PkiPlan(tuple(missing))


def ensure_pki(cluster: Cluster, now: dt.datetime) -> str:
    """Create whatever plan_pki found missing; returns a note of what was issued."""
    directory, spec, policy = cluster.dir, cluster.spec, cluster.spec.tls
    todo = plan_pki(cluster, now).missing
    ca = directory.ca()
    if ca is None:
        ca = pki.issue_ca(f"{spec.name}-ca", policy.key_type, policy.ca_days, now)
        directory.save_identity(ca, directory.ca_cert, directory.ca_key)
    if "admin" in todo:
        admin = pki.issue(
            ca, pki.Role.ADMIN, common_name="root", sans=pki.SubjectAltNames(),
            key_type=policy.key_type, days=policy.leaf_days, now=now,
        )
        directory.save_identity(admin, directory.admin_cert, directory.admin_key)
    if "jwt" in todo:
        keys = pki.jwt_keys(policy.key_type)
        private, public = directory.jwt()
        cluster.host.write(private, keys.private_pem, PRIVATE)
        cluster.host.write(public, keys.public_pem, PUBLIC)
    crl = revocation.write_crl(cluster, ca) if "crl" in todo else directory.crl.read_bytes()
    jwt_private, jwt_public = directory.jwt()
    for member in spec.members:
        layout = directory.layout(member.name)
        if member.name in todo:
            identity = pki.issue(
                ca, pki.Role.MEMBER, common_name=member.name, sans=member_sans(spec, member),
                key_type=policy.key_type, days=policy.leaf_days, now=now,
            )
            directory.save_identity(identity, Path(layout.cert), Path(layout.key))
        # A member gets the CA certificate, never its key; the JWT pair signs auth tokens
        # on whichever member a client authenticates against, so each member holds it.
        cluster.host.write(Path(layout.ca_cert), ca.cert_pem, PUBLIC)
        # The CRL before the configuration that names it: etcd refuses every
        # connection when its CRL file is missing.
        cluster.host.write(Path(layout.crl), crl, PUBLIC)
        cluster.host.write(Path(layout.jwt_private), jwt_private.read_bytes(), PRIVATE)
        cluster.host.write(Path(layout.jwt_public), jwt_public.read_bytes(), PUBLIC)
    return "issued " + ", ".join(todo) if todo else UNCHANGED



def incoming_ca(directory: ClusterDir) -> bytes | None:
    """The CA a `certs rotate --ca` under way brings in (None: no rotation under way)."""
    incoming = directory.next_ca_cert
    return incoming.read_bytes() if incoming.exists() else None
