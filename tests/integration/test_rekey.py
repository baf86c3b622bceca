"""`certs rotate`: new private keys everywhere, the replaced certificates refused."""

from __future__ import annotations

import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.faults.scenarios import MIN_ACKED_DURING, operation
from tests.integration.test_operations import _members
from tests.security.test_revocation import _answer
from tests.support.lab import LabCluster


def _public_key(cert: Path) -> bytes:
    return x509.load_pem_x509_certificate(cert.read_bytes()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_rotation_issues_new_keys_and_revokes_the_old_certificates(
    lab: LabCluster, tmp_path: Path
) -> None:
    lab.ok("up")
    lab.ok("put", "/k", "v")
    old = tmp_path / "old"
    shutil.copytree(lab.state / "pki", old / "pki")
    shutil.copytree(lab.state / "members", old / "members",
                    ignore=shutil.ignore_patterns("data", "*.log"))
    pids = [m["pid"] for m in _members(lab)]
    rotated: list[str] = []
    history = operation(lab, "certs-rotate", tmp_path,
                        lambda _: rotated.append(lab.ok("certs", "rotate").out))
    # One rolling restart, leader last after handing over: writes go on with the other
    # members, the clients reconnect with the new admin certificate, all linearizably.
    assert history.acked_during >= MIN_ACKED_DURING
    assert history.linearizable, history.checker
    assert "revoked" in rotated[0]
    assert all(a != b for a, b in zip([m["pid"] for m in _members(lab)], pids, strict=True))

    for name in (f"{lab.name}-{i}" for i in range(3)):
        new_tls, old_tls = lab.state / "members" / name / "tls", old / "members" / name / "tls"
        assert _public_key(new_tls / "member.crt") != _public_key(old_tls / "member.crt")
        assert (new_tls / "member.key").read_bytes() != (old_tls / "member.key").read_bytes()
        assert (new_tls / "jwt.key").read_bytes() != (old_tls / "jwt.key").read_bytes()
        assert (new_tls / "jwt.key").read_bytes() == (lab.state / "pki" / "jwt.key").read_bytes()
    assert _public_key(lab.state / "pki" / "admin.crt") != _public_key(old / "pki" / "admin.crt")

    new_admin = lab.state / "pki" / "admin.crt", lab.state / "pki" / "admin.key"
    old_admin = old / "pki" / "admin.crt", old / "pki" / "admin.key"
    assert _answer(lab, 2379, "/health", *new_admin) == "answered 200"  # control
    assert _answer(lab, 2379, "/health", *old_admin) == "refused"
    member = f"{lab.name}-0"
    new_member = (lab.state / "members" / member / "tls" / "member.crt",
                  lab.state / "members" / member / "tls" / "member.key")
    old_member = (old / "members" / member / "tls" / "member.crt",
                  old / "members" / member / "tls" / "member.key")
    assert _answer(lab, 2380, "/members", *new_member) == "answered 200"  # control
    assert _answer(lab, 2380, "/members", *old_member) == "refused"

    assert lab.ok("get", "/k").out == "v\n"
    assert lab.ok("status", "--json").json()["healthy"] is True
    assert "no changes" in lab.ok("up").err  # the rotated PKI is what `up` wants
