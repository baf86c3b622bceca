"""Every attack probe is refused by a real lab cluster."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import LabCluster
from tests.security.probes import PROBES, Probe, _admin, _ca, _context, _https, run_probes


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: p.name)
def test_probe_is_refused(running_lab: LabCluster, probe: Probe) -> None:
    [result] = run_probes(running_lab, [probe])
    assert result.refused, f"{result.name}: {result.detail}"


def test_the_admin_certificate_is_accepted(running_lab: LabCluster) -> None:
    # The control: the probes are refused for what they are, not because nothing works.
    assert _https(running_lab, 2379, "/health", _context(_ca(running_lab),
                                                         *_admin(running_lab))) == 200


def test_listens_only_on_member_addresses(running_lab: LabCluster) -> None:
    # A listener on 0.0.0.0 (the guide's, lab-defects.md 3) would make these binds fail
    # with EADDRINUSE: Linux refuses a specific bind under a listening wildcard socket.
    neighbour = running_lab.addresses()[0].rsplit(".", 1)[0] + ".200"
    for port in (2379, 2380):
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            other.bind((neighbour, port))
