"""A key rotation (member keys and the JWT signing key) under a running Patroni primary,
on a TLS 1.3-only cluster: Patroni re-authenticates and is never demoted."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.patroni.harness import PATRONI_BIN, patroni_node
from tests.patroni.test_patroni import OBSERVE_S, _bundle
from tests.support import poll
from tests.support.lab import LabCluster


def test_key_and_jwt_rotation_does_not_demote_patroni(
    lab: LabCluster, tmp_path: Path
) -> None:
    if not (PATRONI_BIN / "patroni").exists():
        pytest.fail("Patroni is not installed in .tools/patroni: run scripts/setup")
    lab.ok("up")
    assert "ETCD_TLS_MIN_VERSION='TLS1.3'" in (
        lab.state / "members" / f"{lab.name}-0" / "etcd.env").read_text()
    bundle = tmp_path / "bundle"
    section = _bundle(lab, "demo", "pg0", bundle)
    address = lab.addresses()[0].rsplit(".", 1)[0] + ".50"
    jwt_before = (lab.state / "pki" / "jwt.key").read_bytes()
    with patroni_node("demo", "pg0", address, section, bundle) as node:
        try:
            node.wait_primary()  # bootstrapped against the TLS 1.3-only cluster
        except TimeoutError:
            pytest.fail(f"Patroni never became primary:\n{node.log_tail()}")
        timeline = node.state().get("timeline")
        log_before = len(node.log_tail(100_000).splitlines())
        roles: list[str] = []
        done = threading.Event()

        def sample() -> None:
            # Bounded: the rotation plus the observation window after it.
            while not done.is_set():
                roles.append(node.role())
                time.sleep(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            lab.ok("certs", "rotate")
            until = time.monotonic() + OBSERVE_S
            while time.monotonic() < until:  # Patroni's ttl: a lost lock shows by then
                time.sleep(0.5)
        finally:
            done.set()
            sampler.join(timeout=10)
        new_lines = node.log_tail(100_000).splitlines()[log_before:]
        assert set(roles) == {"primary"}, (roles, "\n".join(new_lines[-30:]))
        assert node.state().get("timeline") == timeline
        # Its token was signed by the old JWT key, which no member holds any more:
        # Patroni only kept its lock because it authenticated again.
        assert any("authenticate" in line for line in new_lines), "\n".join(new_lines)
        assert "pg0" in node.patronictl("list")

        # Positive control: the same observation sees a demotion when the lock really is
        # lost (another node's name written into the leader key, as root). Without it,
        # "always primary" above could be a sampler that cannot see anything else.
        lab.ok("put", "/service/demo/leader", "pg-ghost")
        try:
            demoted = poll(lambda: ((role := node.role()) != "primary" and role) or None,
                           3 * 10 + 10, "Patroni was not demoted after losing its lock",
                           interval=0.5)  # within a few loop_waits (10 s)
        except TimeoutError:
            pytest.fail(f"the control failed: still primary\n{node.log_tail()}")
        assert demoted != "primary"
    assert (lab.state / "pki" / "jwt.key").read_bytes() != jwt_before
