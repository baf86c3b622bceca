"""Every attack probe is refused by a real lab cluster — and the probes can tell a refusal
from a cluster that is simply not there, or not protected."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable

import pytest

from tests.security.probes import (
    CONTROLS,
    PROBES,
    REVOCATION_PROBES,
    Probe,
    Verdict,
    _admin,
    _ca,
    _cn_less_certificate_reads_nothing,
    attempt,
    judge_failure,
    judge_status,
    run_probes,
)
from tests.support.lab import VENV_BIN, LabCluster


@pytest.mark.parametrize("probe", PROBES + REVOCATION_PROBES, ids=lambda p: p.name)
def test_probe_is_refused(running_lab: LabCluster, probe: Probe) -> None:
    run = run_probes(running_lab, [probe])
    assert run.valid, (run.controls, run.controls_after)
    [result] = run.results
    assert result.refused, f"{result.name}: {result.verdict} ({result.detail})"


def test_only_etcds_own_no_is_a_refusal() -> None:
    # A bare 400 (a proxy, a wrong path) and a hang-up alone (a dying server) prove nothing;
    # etcd's reason in the body does.
    assert judge_status(400, b"").verdict is Verdict.INCONCLUSIVE
    assert judge_status(403, b"<html>Forbidden</html>").verdict is Verdict.INCONCLUSIVE
    body = b'{"error":"etcdserver: authentication failed, invalid user ID or password"}'
    assert judge_status(400, body).verdict is Verdict.REFUSED
    assert judge_failure(ConnectionResetError()).verdict is Verdict.INCONCLUSIVE


def test_the_controls_pass_on_a_running_cluster(running_lab: LabCluster) -> None:
    for control in CONTROLS:
        result = attempt(running_lab, control)
        assert result.verdict is Verdict.ACCEPTED, result


def test_a_stopped_cluster_makes_the_run_invalid_and_refuses_nothing(
    lab_factory: Callable[..., LabCluster],
) -> None:
    lab = lab_factory(1)
    lab.ok("up")
    lab.ok("down")
    run = run_probes(lab)
    assert not run.valid and not run.passed
    assert all(c.verdict is Verdict.INCONCLUSIVE for c in run.controls), run.controls
    # Even run one by one, without the controls, no probe takes silence for a refusal.
    for probe in PROBES:
        result = attempt(lab, probe)
        assert not result.refused, result


def _etcdctl_as_admin(lab: LabCluster, *argv: str) -> None:
    cert, key = _admin(lab)
    subprocess.run([str(VENV_BIN / "etcdctl"), f"--endpoints=https://{lab.addresses()[0]}:2379",
                    f"--cacert={_ca(lab)}", f"--cert={cert}", f"--key={key}", *argv],
                   check=True, capture_output=True, env={"PATH": "/usr/bin:/bin"})


def test_auth_turned_off_is_detected(lab_factory: Callable[..., LabCluster]) -> None:
    lab = lab_factory(1)
    lab.ok("up")
    probe = Probe("auth is on", _cn_less_certificate_reads_nothing)
    assert attempt(lab, probe).refused
    _etcdctl_as_admin(lab, "auth", "disable")
    try:
        result = attempt(lab, probe)
        assert result.verdict is Verdict.ACCEPTED, result
        assert not run_probes(lab, [probe]).passed
    finally:
        _etcdctl_as_admin(lab, "auth", "enable")
    assert attempt(lab, probe).refused


def test_listens_only_on_member_addresses(running_lab: LabCluster) -> None:
    # A listener on 0.0.0.0 (the guide's, docs/guide-defects.md 3) would make these binds fail
    # with EADDRINUSE: Linux refuses a specific bind under a listening wildcard socket.
    neighbour = running_lab.addresses()[0].rsplit(".", 1)[0] + ".200"
    for port in (2379, 2380):
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            other.bind((neighbour, port))
