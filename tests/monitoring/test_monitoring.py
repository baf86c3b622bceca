"""`dcsctl monitoring`: the rules pass promtool's checks and unit tests, name only metrics
every supported etcd exports, and the monitoring certificate reads /metrics and no key."""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import re
import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from dcsctl import prometheus
from dcsctl.errors import DcsctlError
from dcsctl.etcd.client import ClientTls, EtcdClient, metrics_text
from dcsctl.etcd.versions import NEWEST, Version
from dcsctl.wait import wait_until
from tests.security.gateway import Gateway
from tests.support import cluster_of
from tests.support.lab import LabCluster

HERE = Path(__file__).parent


def promtool(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


def _write_rules(directory: Path, rules: tuple[prometheus.AlertRule, ...]) -> None:
    (directory / "rules.yml").write_bytes(prometheus.dump(prometheus.rules_document(rules)))
    shutil.copy(HERE / "rules_test.yml", directory / "rules_test.yml")


def test_every_alert_fires_and_resolves_in_promtool_unit_tests(tmp_path: Path) -> None:
    _write_rules(tmp_path, prometheus.RULES)
    checked = promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(prometheus.RULES)} rules found" in checked.stdout
    tested = promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr

    # Every alert is seen firing and, at a later time, resolved (no alert of its name).
    cases = yaml.safe_load((HERE / "rules_test.yml").read_text())["tests"]
    fired: dict[str, int] = {}
    resolved: dict[str, int] = {}
    for group in cases:
        for case in group["alert_rule_test"]:
            minutes = int(case["eval_time"].removesuffix("m"))
            name = case["alertname"]
            if case["exp_alerts"]:
                fired[name] = min(fired.get(name, minutes), minutes)
            else:
                resolved[name] = max(resolved.get(name, minutes), minutes)
    names = {rule.name for rule in prometheus.RULES}
    assert set(fired) == names
    late = {name for name in names if resolved.get(name, -1) <= fired[name]}
    assert late == set()

    # The control: the same unit tests fail against rules with another `for:`.
    slower = tuple(dataclasses.replace(r, for_="3m") if r.name == "EtcdMemberDown" else r
                   for r in prometheus.RULES)
    _write_rules(tmp_path, slower)
    assert promtool("test", "rules", "rules_test.yml", cwd=tmp_path).returncode != 0


def _metric_names(expression: str) -> set[str]:
    names = set(re.findall(r"\b((?:etcd|grpc)_[a-z_]+)\{", expression))
    return {name.removesuffix("_bucket") for name in names}


@pytest.mark.parametrize("version", sorted(NEWEST.values()), ids=str)
def test_rules_use_only_metrics_that_etcd_exports(
    lab_factory: Callable[..., LabCluster], version: Version
) -> None:
    lab = lab_factory(members=3, etcd=version)  # peers: the round-trip histogram
    lab.ok("up")
    lab.ok("put", "/k", "v")  # a unary call observed: the gRPC handling histogram
    cluster = cluster_of(lab)
    used = set().union(*(_metric_names(rule.expr) for rule in prometheus.RULES))
    assert len(used) >= 8  # the parse found the rules' metrics
    page = ""

    def missing() -> set[str]:
        nonlocal page
        page = metrics_text(cluster.endpoints()[0], cluster.admin_tls())
        return used - {line.split()[2] for line in page.splitlines()
                       if line.startswith("# TYPE ")}

    # etcd probes its peers' round trip every few seconds: the first probe registers it
    wait_until(lambda: not missing(), timeout=30, what=f"etcd {version} to export them",
               last_error=lambda: str(sorted(missing())))
    # NOSPACE shows as writes refused with ResourceExhausted: etcd counts that code too.
    assert re.search(r'grpc_server_handled_total\{grpc_code="ResourceExhausted",'
                     r'grpc_method="Put",grpc_service="etcdserverpb.KV"', page)


def _gateway_call(host: str, context: ssl.SSLContext, path: str,
                  body: dict[str, str]) -> tuple[int, str]:
    connection = http.client.HTTPSConnection(host, 2379, context=context, timeout=10)
    try:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_monitoring_certificate_reads_metrics_but_no_key(lab: LabCluster, tmp_path: Path
                                                         ) -> None:
    lab.ok("up")
    lab.ok("put", "/service/demo/leader", "pg-0")
    out = tmp_path / "monitoring"
    written = lab.ok("monitoring", "--out", str(out))
    assert "prometheus.yml" in written.out
    assert (out / "monitoring.key").stat().st_mode & 0o777 == 0o600
    checked = promtool("check", "config", "prometheus.yml", cwd=out)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    cluster = cluster_of(lab)
    endpoint = cluster.endpoints()[0]
    monitoring = ClientTls((out / "ca.crt").read_bytes(), (out / "monitoring.crt").read_bytes(),
                           (out / "monitoring.key").read_bytes(), cluster.spec.shared_dns_name)
    # Positive controls: the admin certificate reads the key; the monitoring one gets in.
    with EtcdClient([endpoint], cluster.admin_tls()) as admin:
        found = admin.get("/service/demo/leader")
        assert found is not None and found.value == b"pg-0"
    assert "etcd_server_has_leader" in metrics_text(endpoint, monitoring)

    # gRPC: no CN, no etcd user: etcd refuses the read and the write itself.
    with EtcdClient([endpoint], monitoring) as probe:
        with pytest.raises(DcsctlError, match="permission"):
            probe.get("/service/demo/leader")
        with pytest.raises(DcsctlError, match="permission"):
            probe.put("/service/demo/leader", b"hijacked")

    # The JSON gateway (Patroni's way in), same certificate, no password: refused.
    context = ssl.create_default_context(cafile=str(out / "ca.crt"))
    context.check_hostname = False
    context.load_cert_chain(str(out / "monitoring.crt"), str(out / "monitoring.key"))
    host = lab.addresses()[0]
    key = base64.b64encode(b"/service/demo/leader").decode()
    for path, body in (("/v3/kv/range", {"key": key}),
                       ("/v3/kv/put", {"key": key, "value": base64.b64encode(b"x").decode()})):
        status, text = _gateway_call(host, context, path, body)
        # etcd's own refusal (not a dead connection): 400 "user name is empty" or 403
        # "permission denied", depending on the version.
        assert status in (400, 403), (path, status, text)
        assert re.search("user name is empty|permission denied", text), (path, text)
    # Control for the gateway: the same TLS certificate with root's password reads the key.
    password = (lab.state / "secrets" / "root.password").read_text().strip()
    gateway = Gateway(host, out, "monitoring", "root", password)
    status, answer = gateway.get("/service/demo/leader")
    kvs = answer.get("kvs")
    assert status == 200 and isinstance(kvs, list)
    assert base64.b64decode(kvs[0]["value"]) == b"pg-0"
    # Nothing was written by the probes.
    with EtcdClient([endpoint], cluster.admin_tls()) as admin:
        found = admin.get("/service/demo/leader")
        assert found is not None and found.value == b"pg-0"
