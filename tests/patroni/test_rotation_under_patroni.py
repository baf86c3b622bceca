"""A key rotation (member keys and the JWT signing key) under a running Patroni primary,
on a TLS 1.3-only cluster: Patroni re-authenticates and is never demoted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.patroni.harness import PATRONI_BIN, UNREACHABLE, RoleSampler, patroni_node
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
        started = node.state()["postmaster_start_time"]
        with RoleSampler(node) as sampler:
            lab.ok("certs", "rotate")
            sampler.observe(OBSERVE_S)
        new_lines = node.log_tail(100_000).splitlines()[log_before:]
        assert sampler.never_demoted(), (sampler.roles, "\n".join(new_lines[-30:]))
        assert node.state().get("timeline") == timeline
        assert node.state()["postmaster_start_time"] == started  # PostgreSQL never restarted
        # Its token was signed by the old JWT key, which no member holds any more:
        # Patroni only kept its lock because it authenticated again.
        assert any("authenticate" in line for line in new_lines), "\n".join(new_lines)
        assert "pg0" in node.patronictl("list")

        # Positive control: the same observation sees a demotion when the lock really is
        # lost (another node's name written into the leader key, as root). Without it,
        # "always primary" above could be a sampler that cannot see anything else.
        lab.ok("put", "/service/demo/leader", "pg-ghost")

        def demoted() -> str | None:  # an answer that is not primary (no answer is none)
            role = node.role()
            return role if role not in {"primary", UNREACHABLE} else None

        try:  # within a few loop_waits (10 s)
            poll(demoted, 3 * 10 + 10, "Patroni was not demoted after losing its lock",
                 interval=0.5)
        except TimeoutError:
            pytest.fail(f"the control failed: still primary\n{node.log_tail()}")
    assert (lab.state / "pki" / "jwt.key").read_bytes() != jwt_before
