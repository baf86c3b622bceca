"""Revoked certificates are refused on the client and peer ports, while the members run.

Each probe is paired with its positive control: the same request with a certificate of
the same kind that is not revoked is answered, so a refusal is the CRL's doing and not a
dead port or a wrong request.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from dcsctl import pki
from tests.integration.test_operations import _members
from tests.security.probes import Verdict, _ca, _context, _https
from tests.support.lab import LabCluster


def _answer(lab: LabCluster, port: int, path: str, cert: Path, key: Path) -> str:
    """What one request with this client certificate gets: "answered <status>", "refused"
    (etcd's own no: a TLS alert or a hang-up after the handshake), or why there was no
    answer at all (nothing listening, a timeout), which is never taken for "refused"."""
    answer = _https(lab, port, path, _context(_ca(lab), cert, key))
    if answer.verdict is Verdict.ACCEPTED:
        return f"answered {answer.detail.removeprefix('HTTP ')}"
    if answer.verdict is Verdict.REFUSED:
        return "refused"
    return answer.detail


def _crl_serials(lab: LabCluster, member_dir: Path) -> frozenset[int]:
    return pki.revoked_serials((member_dir / "tls" / "ca.crl").read_bytes())


def test_removed_members_certificate_is_refused_on_client_and_peer_ports(
    lab: LabCluster, tmp_path: Path
) -> None:
    lab.ok("up")
    members = _members(lab)
    pids_before = {m["name"]: m["pid"] for m in members}
    victim, control = str(members[2]["name"]), str(members[1]["name"])
    kept = tmp_path / "victim"
    shutil.copytree(lab.state / "members" / victim / "tls", kept)
    revoked_cert, revoked_key = kept / "member.crt", kept / "member.key"
    control_tls = lab.state / "members" / control / "tls"
    control_cert, control_key = control_tls / "member.crt", control_tls / "member.key"
    for port, path in ((2379, "/health"), (2380, "/members")):
        # Before: the victim's certificate is as good as any member's.
        assert _answer(lab, port, path, revoked_cert, revoked_key) == "answered 200"

    lab.ok("member", "remove", victim, "--yes")

    serial = pki.serial_number(revoked_cert.read_bytes())
    for name in (str(m["name"]) for m in members[:2]):
        assert serial in _crl_serials(lab, lab.state / "members" / name)
    for port, path in ((2379, "/health"), (2380, "/members")):
        assert _answer(lab, port, path, control_cert, control_key) == "answered 200"  # control
        assert _answer(lab, port, path, revoked_cert, revoked_key) == "refused"
    # Measured, not assumed: no member was restarted, so etcd read the new CRL at the
    # next connection.
    after = {m["name"]: m["pid"] for m in _members(lab)}
    assert after == {name: pids_before[name] for name in after}


def test_superseded_patroni_certificate_is_revoked_on_request(
    lab: LabCluster, tmp_path: Path
) -> None:
    lab.ok("up")
    lab.ok("patroni", "add", "demo")
    lab.ok("patroni", "config", "demo", "--node", "pg0")
    bundle = lab.state / "patroni" / "demo" / "pg0"
    old = tmp_path / "old"
    shutil.copytree(bundle, old)

    rotated = lab.ok("certs", "rotate", "--patroni")
    assert "certs revoke --superseded" in rotated.out
    new_cert, new_key = bundle / "pg0.crt", bundle / "pg0.key"
    assert new_key.read_bytes() != (old / "pg0.key").read_bytes()
    # Until the new bundles are deployed the old certificate keeps working.
    assert _answer(lab, 2379, "/health", old / "pg0.crt", old / "pg0.key") == "answered 200"

    result = lab.ok("certs", "revoke", "--superseded", "--yes")
    assert "patroni-demo" in result.out
    assert _answer(lab, 2379, "/health", new_cert, new_key) == "answered 200"  # control
    assert _answer(lab, 2379, "/health", old / "pg0.crt", old / "pg0.key") == "refused"


def test_revoking_a_certificate_in_use_is_refused(lab: LabCluster) -> None:
    lab.ok("up")
    admin = lab.state / "pki" / "admin.crt"
    result = lab.dcsctl("certs", "revoke", str(admin), "--yes")
    assert result.code != 0
    assert "current admin certificate" in result.err and "fix:" in result.err
    assert _answer(lab, 2379, "/health", admin, lab.state / "pki" / "admin.key") == "answered 200"
