"""What makes a deployed Patroni certificate unfit for an operation that reconnects."""

from __future__ import annotations

import datetime as dt

import pytest

from dcsctl import pki
from dcsctl.ops.patroni_guard import MARGIN, certificate_problems
from dcsctl.spec import KeyType

NOW = dt.datetime(2026, 12, 5, 18, 0, tzinfo=dt.UTC)
CA = pki.issue_ca("dcs-ca", KeyType.ECDSA_P256, 3650, NOW - dt.timedelta(days=400))
OTHER_CA = pki.issue_ca("other-ca", KeyType.ECDSA_P256, 3650, NOW - dt.timedelta(days=400))


def _cert(ca: pki.Identity, issued: dt.datetime, days: int) -> bytes:
    return pki.issue(ca, pki.Role.CLIENT, common_name=None, organization="patroni-demo",
                     sans=pki.SubjectAltNames(), key_type=KeyType.ECDSA_P256, days=days,
                     now=issued).cert_pem


GOOD = _cert(CA, NOW - dt.timedelta(days=1), 365)


@pytest.mark.parametrize(("cert", "revoked", "words"), [
    (GOOD, set(), None),
    (_cert(CA, NOW - dt.timedelta(days=10), 5), set(), "expired at"),
    (_cert(CA, NOW - dt.timedelta(hours=23), 1), set(), "within 24 h"),
    (GOOD, {pki.serial_number(GOOD)}, "is revoked"),
    (_cert(OTHER_CA, NOW - dt.timedelta(days=1), 365), set(), "a CA the members will not"),
    (b"not a certificate", set(), "not a PEM certificate"),
])
def test_a_deployed_certificate_is_judged_as_etcd_would_at_the_next_connection(
    cert: bytes, revoked: set[int], words: str | None
) -> None:
    found = certificate_problems(cert, CA.cert_pem, revoked, NOW, MARGIN)
    if words is None:
        assert found == []
    else:
        assert any(words in problem for problem in found), found


def test_during_a_ca_rotation_either_trusted_ca_will_do() -> None:
    bundle = OTHER_CA.cert_pem + CA.cert_pem
    assert certificate_problems(GOOD, bundle, set(), NOW, MARGIN) == []
