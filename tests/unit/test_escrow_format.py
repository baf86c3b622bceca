"""The escrow file: what goes in comes out, and only with the right passphrase."""

from __future__ import annotations

import pytest

from dcsctl import escrow
from dcsctl.escrow import Escrow, EscrowInvalid, StateFile

PASS = b"correct horse battery staple"
STATE = Escrow("dcs", "dcs-1a2b3c4d", ("8e52e27eca497840",), "2026-12-05T18:00:00+00:00",
               (StateFile("pki/ca.key", 0o600, b"-----BEGIN PRIVATE KEY-----"),
                StateFile("cluster.json", 0o644, b"{}")))
LOW = 14  # the smallest cost an escrow may name: keeps the table fast


def test_round_trip_keeps_paths_modes_and_bytes() -> None:
    opened = escrow.open_sealed(escrow.seal(STATE, PASS, log2_n=LOW), PASS, what="f")
    assert opened == STATE
    assert b"BEGIN PRIVATE KEY" not in escrow.seal(STATE, PASS, log2_n=LOW)


@pytest.mark.parametrize(("damage", "passphrase", "message"), [
    (lambda b: b, b"wrong horse battery staple", "wrong passphrase"),
    (lambda b: b[:-3] + bytes([b[-3] ^ 1]) + b[-2:], PASS, "is damaged"),
    (lambda b: b[:-40], PASS, "is damaged"),
    (lambda b: b[:8] + bytes([30]) + b[9:], PASS, "unexpected key-derivation cost"),
    (lambda b: b"NOTESCR1" + b[8:], PASS, "not a dcsctl escrow"),
])
def test_wrong_passphrase_and_damage_are_refused(damage, passphrase: bytes,  # type: ignore[no-untyped-def]
                                                 message: str) -> None:
    with pytest.raises(EscrowInvalid, match=message):
        escrow.open_sealed(damage(escrow.seal(STATE, PASS, log2_n=LOW)), passphrase, what="f")


def test_unsafe_paths_inside_are_refused() -> None:
    evil = Escrow("dcs", "t", (), "x", (StateFile("../../etc/cron.d/x", 0o644, b""),))
    with pytest.raises(EscrowInvalid, match="unsafe paths"):
        escrow.open_sealed(escrow.seal(evil, PASS, log2_n=LOW), PASS, what="f")


def test_short_passphrases_are_refused() -> None:
    with pytest.raises(EscrowInvalid, match="at least 12"):
        escrow.seal(STATE, b"short", log2_n=LOW)
