"""Patroni on real database hosts: db-00..02 (Debian's PostgreSQL, Patroni 4.1.5 as a
systemd service) on the guide's etcd cluster, their bundles deployed by `dcsctl up` over
SSH and taken in with `reload: systemd`.

One deployment for the module (the testbed's boot, etcd and Patroni are paid once):
the database hosts as `scripts/testbed up --db 3` boots them, then `dcsctl up` and the
operator's `systemctl start patroni`, then dcsctl's operations under a PostgreSQL writer
and a sampler of every node (tests/testbed/pgwatch.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dcsctl.etcd.versions import NEWEST
from dcsctl.wait import wait_until
from tests.testbed import dbhosts
from tests.testbed.bed import Testbed
from tests.testbed.conftest import Deployment, make_deployment, wait_healthy

DB_HOSTS = {"db-00": "192.168.56.70", "db-01": "192.168.56.71", "db-02": "192.168.56.72"}


@pytest.fixture(scope="module")
def db_bed(testbed: Testbed) -> Iterator[Testbed]:
    """The session's testbed with three database hosts more; they go at the end."""
    try:
        testbed.up(hosts=3, db=3)
        yield testbed
    finally:
        testbed.remove_db_hosts()
        while len(testbed.hosts()) > 3:
            testbed.remove_last_host()


def _states(bed: Testbed, instance: dbhosts.Instance) -> dict[str, dict[str, object]]:
    """GET /patroni of every node of one instance, from the control side."""
    found: dict[str, dict[str, object]] = {}
    for host, address in bed.db_hosts().items():
        result = bed.run(["curl", "-s", "--max-time", "3",
                          f"http://{address}:{instance.rest_port}/patroni"], check=False)
        found[host] = json.loads(result.stdout) if result.returncode == 0 else {}
    return found


def _formed(bed: Testbed, instance: dbhosts.Instance) -> dict[str, dict[str, object]] | None:
    """One primary, every other node a replica streaming from it; else None."""
    states = _states(bed, instance)
    roles = sorted(str(s.get("role")) for s in states.values())
    streaming = [s.get("replication_state") for s in states.values()
                 if s.get("role") == "replica"]
    if roles == ["primary"] + ["replica"] * (len(states) - 1) and set(streaming) <= {
            "streaming"} and all(s.get("state") == "running" for s in states.values()):
        return states
    return None


def start_patroni(bed: Testbed, instance: dbhosts.Instance) -> dict[str, dict[str, object]]:
    """The operator's step after `dcsctl up` placed the bundles: start Patroni, the first
    host's first (it bootstraps the cluster), then the others (they clone it)."""
    hosts = list(bed.db_hosts())
    bed.ssh(hosts[0], "sudo", "systemctl", "start", instance.unit)
    wait_until(lambda: _states(bed, instance)[hosts[0]].get("role") == "primary",
               timeout=120, interval=1, what=f"{instance.scope}: {hosts[0]} did not bootstrap",
               last_error=lambda: bed.ssh(hosts[0], f"sudo journalctl -u {instance.unit} "
                                          "--no-pager | tail -15", check=False).stdout)
    for host in hosts[1:]:
        bed.ssh(host, "sudo", "systemctl", "start", instance.unit)
    return wait_until(lambda: _formed(bed, instance), timeout=180, interval=1,
                      what=f"{instance.scope}: Patroni did not form one cluster",
                      last_error=lambda: str(_states(bed, instance)))


def test_database_hosts_run_postgresql_and_patroni_as_a_service_waiting_for_the_bundle(
        db_bed: Testbed, tmp_path: Path) -> None:
    assert db_bed.db_hosts() == DB_HOSTS
    for host in DB_HOSTS:
        out = db_bed.ssh(host, "hostname; /opt/patroni/bin/patroni --version; "
                         "/usr/lib/postgresql/15/bin/postgres --version; "
                         "systemctl is-enabled patroni; systemctl is-active patroni; "
                         "systemctl show -p User --value patroni; "
                         "systemctl show -p ExecReload --value patroni; "
                         "pg_lsclusters -h | wc -l; cat /etc/apt/sources.list.d/*",
                         check=False).stdout.splitlines()
        assert out[:2] == [host, "patroni 4.1.5"], out
        assert out[2].startswith("postgres (PostgreSQL) 15."), out
        # enabled, not started: its condition (the bundle's etcd3.yml) is not met yet
        assert out[3:5] == ["enabled", "inactive"], out
        assert out[5] == "postgres" and "kill -HUP" in out[6], out
        assert out[7] == "0", out  # no "main" cluster: Patroni makes its own
        assert out[8] == "deb [trusted=yes] file:/srv/dcsctl-repo ./", out
        condition = db_bed.ssh(host, "systemctl show -p ConditionResult --value "
                               "patroni").stdout.strip()
        assert condition == "no"

    # `scripts/testbed spec`: init's patroni section for the hosts booted, reload: systemd
    spec = yaml.safe_load(db_bed.spec())
    (scope,) = spec["patroni"]["scopes"]
    assert scope["name"] == "demo"
    assert [(n["name"], n["address"], n["ssh"], n["reload"], n["systemd_unit"],
             n["bundle_dir"]) for n in scope["nodes"]] == [
        (h, a, h, "systemd", "patroni", "/etc/patroni/etcd") for h, a in DB_HOSTS.items()]
    d = make_deployment(db_bed, tmp_path)
    plan = d.dcsctl("up", "--plan").stdout
    for host in DB_HOSTS:
        assert f"patroni demo/{host} ({host})" in plan, plan
    assert "+ /etc/patroni/etcd/etcd3.yml" in plan


@pytest.fixture(scope="module")
def db_cluster(db_bed: Testbed, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Deployment]:
    """The guide's etcd on etcd's newest 3.5 release (the upgrades go on from there),
    with the testbed's patroni section; `dcsctl up`, then Patroni started."""
    d = make_deployment(db_bed, tmp_path_factory.mktemp("testbed-patroni"))
    mirror = db_bed.release_mirror()
    assert mirror is not None
    document = yaml.safe_load(d.spec_file.read_text())
    document["install"] = mirror.install(NEWEST["3.5"])
    d.spec_file.write_text(yaml.safe_dump(document, sort_keys=False))
    try:
        up = d.dcsctl("up", "--json", timeout=600)
        d.up_result = json.loads(up.stdout)  # type: ignore[attr-defined]
        yield d
    finally:
        for host in db_bed.db_hosts():
            for instance in dbhosts.INSTANCES:
                db_bed.ssh(host, "sudo", "systemctl", "stop", instance.unit, check=False,
                           timeout=90)
        d.dcsctl("destroy", "--yes", check=False, timeout=300)


def test_up_deploys_the_bundles_and_patroni_forms_one_cluster_reloaded_by_systemd(
        db_cluster: Deployment, db_bed: Testbed) -> None:
    d = db_cluster
    phases = {p["name"]: p for p in d.up_result["phases"]}  # type: ignore[attr-defined]
    note = str(phases["patroni"]["note"])
    for host in DB_HOSTS:  # placed; Patroni is not running yet: nothing to verify
        assert f"demo/{host}: " in note and "Patroni does not answer" in note, note
    for host in DB_HOSTS:
        files = db_bed.ssh(host, "sudo stat -c '%n %a %U' /etc/patroni/etcd/*").stdout
        assert sorted(files.splitlines()) == sorted([
            "/etc/patroni/etcd/ca.crt 644 postgres",
            f"/etc/patroni/etcd/{host}.crt 644 postgres",
            f"/etc/patroni/etcd/{host}.key 600 postgres",
            "/etc/patroni/etcd/etcd3.yml 600 postgres"]), files

    states = start_patroni(db_bed, dbhosts.FIRST)
    assert states["db-00"]["role"] == "primary"
    status = json.loads(d.dcsctl("patroni", "status", "--json").stdout)
    nodes = {n["name"]: n for n in status["nodes"]}
    assert sorted(nodes) == sorted(DB_HOSTS)
    assert {n: (v["reachable"], v["role"], v["version"]) for n, v in nodes.items()} == {
        "db-00": (True, "primary", "4.1.5"), "db-01": (True, "replica", "4.1.5"),
        "db-02": (True, "replica", "4.1.5")}
    assert all(v["serial_deployed"] == v["serial_issued"] is not None
               for v in nodes.values()), nodes
    doctor = d.dcsctl("patroni", "doctor", "demo", "--json")
    verdicts = {(c["node"], c["check"]): c["verdict"]
                for c in json.loads(doctor.stdout)["checks"]}
    assert {v for (_, check), v in verdicts.items() if check != "failsafe_mode"} == {"ok"}

    # reload: systemd on a real systemd host: an etcd3.yml gone stale on db-01 (an
    # operator's edit) is put back by `up`, Patroni reloaded by `systemctl reload`
    # (SIGHUP), made to reconnect and seen back on etcd; PostgreSQL untouched.
    started = {h: s["postmaster_start_time"] for h, s in states.items()}
    db_bed.ssh("db-01", "echo '# edited' | sudo tee -a /etc/patroni/etcd/etcd3.yml")
    since = db_bed.ssh("db-01", "date +%s").stdout.strip()
    again = json.loads(d.dcsctl("up", "--json").stdout)
    note = str({p["name"]: p for p in again["phases"]}["patroni"]["note"])
    assert "demo/db-01: etcd3.yml — reached etcd on new connections" in note, note
    journal = db_bed.ssh("db-01", f"sudo journalctl -u patroni --since @{since} --no-pager "
                         "-o cat").stdout
    assert "Reloaded" in journal and "Reloading" in journal, journal
    after = wait_until(lambda: _formed(db_bed, dbhosts.FIRST), timeout=60, interval=1,
                       what="the cluster changed after the reload")
    assert {h: s["postmaster_start_time"] for h, s in after.items()} == started
    assert after["db-00"]["role"] == "primary"
    wait_healthy(d)
