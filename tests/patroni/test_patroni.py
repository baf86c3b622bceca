"""Acceptance with the real thing: Patroni + PostgreSQL on a dcsctl cluster.

Patroni reaches etcd through its JSON gateway with the CN-less client certificate and a
per-scope user; the tests probe that same path for what the user may and may not do.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.patroni.harness import PATRONI_BIN, PatroniNode, RoleSampler, patroni_node
from tests.security.gateway import Gateway
from tests.support import cluster_of
from tests.support.lab import LabCluster

OBSERVE_S = 30  # the window: no demotion for 30 s after each etcd fault


@pytest.fixture(scope="module", autouse=True)
def _patroni_installed() -> None:
    if not (PATRONI_BIN / "patroni").exists():
        pytest.fail("Patroni is not installed in .tools/patroni: run scripts/setup")


def _bundle(lab: LabCluster, scope: str, node: str, out: Path) -> dict[str, object]:
    lab.ok("patroni", "add", scope)
    lab.ok("patroni", "config", scope, "--node", node, "--out", str(out))
    section = yaml.safe_load((out / "etcd3.yml").read_text())["etcd3"]
    assert isinstance(section, dict)
    return section


def _denied(answer: tuple[int, dict[str, object]]) -> bool:
    status, body = answer
    return status != 200 and "permission denied" in json.dumps(body)


def _password(lab: LabCluster, scope: str) -> str:
    return (lab.state / "secrets" / f"patroni-{scope}.password").read_text().strip()


@pytest.fixture(scope="module")
def primary(
    running_lab: LabCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PatroniNode]:
    bundle = tmp_path_factory.mktemp("bundle")
    section = _bundle(running_lab, "demo", "pg0", bundle)
    address = running_lab.addresses()[0].rsplit(".", 1)[0] + ".50"
    with patroni_node("demo", "pg0", address, section, bundle) as node:
        try:
            node.wait_primary()
        except TimeoutError:
            pytest.fail(f"Patroni never became primary:\n{node.log_tail()}")
        yield node


def test_patroni_bootstraps_on_the_generated_section(
    running_lab: LabCluster, primary: PatroniNode
) -> None:
    listing = primary.patronictl("list")
    assert "pg0" in listing and "Leader" in listing and "running" in listing
    view = running_lab.ok("status", "--json").json()
    scopes = view["patroni"]
    assert isinstance(scopes, list)
    demo = next(s for s in scopes if s["scope"] == "demo")
    assert demo["leader"] == "pg0" and "pg0" in demo["members"]
    cluster = cluster_of(running_lab)
    with cluster.admin_client() as client:
        keys = [kv.key for kv in client.get_prefix("/")]
    patroni_keys = [k for k in keys if k.startswith("/service/")]
    assert patroni_keys and all(k.startswith("/service/demo/") for k in patroni_keys)


def test_killing_the_etcd_leader_does_not_demote_patroni(
    running_lab: LabCluster, primary: PatroniNode
) -> None:
    view = running_lab.ok("status", "--json").json()
    members = view["members"]
    assert isinstance(members, list)
    leader = next(m for m in members if m["status"] and m["status"]["is_leader"])
    started = primary.state()["postmaster_start_time"]
    with RoleSampler(primary) as sampler:
        os.kill(leader["pid"], signal.SIGKILL)
        sampler.observe(OBSERVE_S)
    running_lab.ok("up")  # brings the killed member back
    assert sampler.never_demoted(), sampler.roles
    assert primary.state()["postmaster_start_time"] == started  # PostgreSQL never restarted


def test_one_etcd_member_stopped_for_30_s_does_not_demote_patroni(
    running_lab: LabCluster, primary: PatroniNode
) -> None:
    cluster = cluster_of(running_lab)
    victim = cluster.spec.members[1].name
    started = primary.state()["postmaster_start_time"]
    with RoleSampler(primary) as sampler:
        assert cluster.service(victim).stop()
        sampler.observe(OBSERVE_S)
    running_lab.ok("up")
    assert sampler.never_demoted(), sampler.roles
    assert primary.state()["postmaster_start_time"] == started
    assert running_lab.ok("status", "--json").json()["healthy"] is True


def test_patroni_user_is_confined_to_its_prefix(
    running_lab: LabCluster, primary: PatroniNode, tmp_path: Path
) -> None:
    bundle = tmp_path / "pg1"
    running_lab.ok("patroni", "config", "demo", "--node", "pg1", "--out", str(bundle))
    host = running_lab.addresses()[0]
    demo = Gateway(host, bundle, "pg1", "patroni-demo", _password(running_lab, "demo"))
    assert demo.get("/service/demo/leader")[0] == 200
    assert demo.put("/service/demo/probe", "ok")[0] == 200
    assert _denied(demo.get("/service/other/leader"))
    assert _denied(demo.put("/elsewhere", "x"))
    assert _denied(demo.put("/service/demo", "no trailing slash: outside the prefix"))
    assert _denied(demo.call("/v3/auth/user/list", {}))
    assert _denied(demo.call("/v3/auth/role/add", {"name": "escalate"}))


def test_a_second_scope_cannot_read_the_first(
    running_lab: LabCluster, primary: PatroniNode, tmp_path: Path
) -> None:
    bundle = tmp_path / "other"
    _bundle(running_lab, "other", "pgx", bundle)
    other = Gateway(running_lab.addresses()[1], bundle, "pgx", "patroni-other",
                    _password(running_lab, "other"))
    assert other.put("/service/other/config", "{}")[0] == 200
    assert _denied(other.get("/service/demo/leader"))
    assert _denied(other.put("/service/demo/leader", "hijack"))


def test_wrong_password_is_refused(running_lab: LabCluster, tmp_path: Path) -> None:
    bundle = tmp_path / "w"
    _bundle(running_lab, "demo", "pgw", bundle)
    with pytest.raises((KeyError, AssertionError)):
        Gateway(running_lab.addresses()[0], bundle, "pgw", "patroni-demo", "not-the-password")


def test_gateway_rejects_a_client_cert_with_a_cn(running_lab: LabCluster) -> None:
    # The reason dcsctl issues Patroni's certificates without a CN (docs/guide-defects.md 17).
    pki_dir = running_lab.state / "pki"
    context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
    context.check_hostname = False
    context.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
    connection = http.client.HTTPSConnection(running_lab.addresses()[0], 2379,
                                             context=context, timeout=10)
    connection.request("POST", "/v3/kv/range", json.dumps({"key": "Lw=="}),
                       {"Content-Type": "application/json"})
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    assert response.status == 400 and "CommonName" in body


