"""The test S3 server itself: TLS on one named loopback address, gone when stopped."""

from __future__ import annotations

import ssl
import urllib.request
from pathlib import Path

import pytest

from tests.store.versitygw import ADDRESS, Gateway, versitygw
from tests.support import is_gone


def _listeners(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_gateway_listens_with_tls_on_its_loopback_address_only(tmp_path: Path) -> None:
    with versitygw(tmp_path) as gateway:
        pid = gateway.process.pid if gateway.process else 0
        # 127.0.0.1 is 0100007F in /proc/net/tcp; 0.0.0.0 or :: would be every interface.
        assert _listeners(gateway.port) == {"0100007F"}, ADDRESS
        context = ssl.create_default_context(cafile=str(gateway.ca_file))
        with pytest.raises(urllib.request.HTTPError) as refused:  # TLS fine, no signature
            urllib.request.urlopen(gateway.endpoint + "/dcs-backups", context=context, timeout=5)
        assert refused.value.code == 403
        # Positive control of the TLS check: a client without the test CA is refused.
        with pytest.raises(urllib.request.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(gateway.endpoint, timeout=5,
                                   context=ssl.create_default_context())
    assert is_gone(pid) and not _listeners(gateway.port)


def test_gateway_fixture_gives_a_working_bucket(gateway: Gateway) -> None:
    assert (gateway.root / "dcs-backups").is_dir()
    assert oct(gateway.credentials_file.stat().st_mode & 0o777) == "0o600"
