"""A certificate and its private key as PEM bytes: what the state dir keeps and a client
presents. Apart from dcsctl.pki, which issues and parses certificates, so that a command
that only presents one (status, backup, put, get) does not load cryptography."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes
