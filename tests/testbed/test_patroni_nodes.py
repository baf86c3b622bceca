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
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from dcsctl.etcd.versions import NEWEST, Version
from dcsctl.wait import wait_until
from tests.faults.scenarios import MIN_ACKED_DURING
from tests.patroni.harness import PATRONI_BIN
from tests.support import end_by_closing_stdin
from tests.support.lab import risks_of
from tests.testbed import dbhosts, pgwatch
from tests.testbed.bed import REPO, Testbed
from tests.testbed.deployment import Deployment, make_deployment, status_of, wait_healthy
from tests.testbed.history import recording

DB_HOSTS = {"db-00": "192.168.56.70", "db-01": "192.168.56.71", "db-02": "192.168.56.72"}
NEW_HOST, NEW_ADDRESS = "dcs-03", "192.168.56.13"
PATRONI_PYTHON = PATRONI_BIN / "python"
WRITE_INTERVAL_S = 0.2  # per scope: a steady trickle, not a load test on 2 shared cores
WATCH_MAX_S = 1800  # the watcher's own bound; the test stops it sooner


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
    """The guide's etcd as the guide installs it (Debian's 3.5.16),
    with the testbed's patroni section and the operator's own known_hosts; `dcsctl up`
    (Patroni is started by the test, as the operator does)."""
    d = make_deployment(db_bed, tmp_path_factory.mktemp("testbed-patroni"))
    document = yaml.safe_load(d.spec_file.read_text())
    # Debian's 3.5.16 (the guide's `install: apt`), its advisories accepted by name: the
    # upgrades go from there to the newest 3.5, 3.6 and 3.7 releases
    document["install"] = {"method": "apt"}
    document["etcd"]["accept_risks"] = risks_of(Version(3, 5, 16))
    d.spec_file.write_text(yaml.safe_dump(document, sort_keys=False))
    _operators_known_hosts(d, list(db_bed.all_hosts()))
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


class Watcher:
    """tests/testbed/pgwatch.py on the control side, under Patroni's own Python (psycopg):
    a writer through each scope's primary and a sampler of every node."""

    def __init__(self, bed: Testbed, instances: tuple[dbhosts.Instance, ...], work: Path,
                 max_seconds: float) -> None:
        self.bed = bed
        self.out = work / "pgwatch.jsonl"
        self.out.touch()
        pgpass = bed.dir / "pgpass"
        pgpass.touch(mode=0o600)
        pgpass.write_text(f"*:*:*:postgres:{bed.passwords().superuser}\n")
        self.config = work / "pgwatch.json"
        self.config.write_text(json.dumps({"interval": WRITE_INTERVAL_S, "scopes": [
            {"name": i.scope, "port": i.pg_port, "hosts": list(bed.db_hosts().values()),
             "apis": {h: f"http://{a}:{i.rest_port}" for h, a in bed.db_hosts().items()}}
            for i in instances]}))
        self.environ = {"PATH": "/usr/bin:/bin", "PGPASSFILE": str(pgpass),
                        "PYTHONDONTWRITEBYTECODE": "1"}
        bed.net.check_isolation(bed.all_hosts())
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", bed.net.control_ns, str(PATRONI_PYTHON), "-m",
             "tests.testbed.pgwatch", str(self.config), str(self.out), str(max_seconds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=self.environ, cwd=str(REPO))

    def records(self) -> list[dict[str, object]]:
        return pgwatch.read(str(self.out))

    def stop(self) -> str:
        """Close its stdin (it ends within a second) and return its stderr."""
        return end_by_closing_stdin(self.process, timeout=60)

    def present(self) -> dict[str, list[int]]:
        result = self.bed.run([str(PATRONI_PYTHON), "-m", "tests.testbed.pgwatch",
                               str(self.config), "check"], env=self.environ)
        found: dict[str, list[int]] = json.loads(result.stdout)
        return found


def _acked_since(watcher: Watcher, scope: str, when: float) -> int:
    return sum(1 for r in watcher.records() if r.get("scope") == scope
               and r["k"] == "ack" and float(str(r["t"])) >= when)


def _all_seen_after(watcher: Watcher, when: float) -> bool:
    """Every node of every scope answered with a DCS read made after `when`."""
    latest: dict[tuple[str, str], float] = {}
    for r in watcher.records():
        if r["k"] == "s" and r.get("seen") is not None:
            key = (str(r["scope"]), str(r["node"]))
            latest[key] = max(latest.get(key, 0.0), float(str(r["seen"])))
    return len(latest) == len(DB_HOSTS) * len(dbhosts.INSTANCES) and all(
        seen > when for seen in latest.values())


def _hosts_in_etcd3(bed: Testbed, host: str, instance: dbhosts.Instance) -> list[str]:
    text = bed.ssh(host, f"sudo cat {instance.bundle_dir}/etcd3.yml").stdout
    hosts: list[str] = yaml.safe_load(text)["etcd3"]["hosts"]
    return hosts


def _operators_known_hosts(d: Deployment, hosts: list[str]) -> Path:
    """The operator's own known_hosts (the keys recorded when the machines were set up),
    not the testbed's, which learns every new key: the spec points at this copy."""
    known = d.tmp / "known_hosts"
    lines = d.bed.known_hosts.read_text().splitlines(keepends=True)
    known.write_text("".join(line for line in lines if line.split(",")[0] in hosts))
    d.spec_file.write_text(d.spec_file.read_text().replace(
        f"known_hosts_file: {d.bed.known_hosts}", f"known_hosts_file: {known}"))
    return known


def _members(d: Deployment) -> dict[str, dict[str, object]]:
    view = wait_healthy(d)
    return {m["name"]: m for m in view["members"]}  # type: ignore[attr-defined]


def _hashes(d: Deployment) -> dict[str, object]:
    hashes = d.agent("hashes")
    assert isinstance(hashes, dict)
    return hashes


def _member_operations(d: Deployment, bed: Testbed,
                       run: Callable[..., str]) -> None:
    """A fourth host added and removed, and a follower's machine replaced by a new one
    (new disk, new SSH host key, same name and address): the operator's known_hosts
    step first, as the refusal says. (Was test_lifecycle's first test: every assertion
    kept, now with Patroni watched through it.)"""
    writer = d.writer("/life/", 20, 60)  # 20 etcd keys, one process
    written, errors = writer.communicate(timeout=90)
    assert written.count("ack ") == 20, errors
    known = Path(yaml.safe_load(d.spec_file.read_text())["ssh"]["known_hosts_file"])
    assert known != bed.known_hosts

    # A fourth machine: booted (not timed), its key recorded by the operator, then added.
    assert bed.up(hosts=4) == [NEW_HOST]
    known.write_text(known.read_text() + next(
        line + "\n" for line in bed.known_hosts.read_text().splitlines()
        if line.startswith(f"{NEW_HOST},")))
    added = run("member add", "member", "add", NEW_HOST, "--address", NEW_ADDRESS,
                "--ssh", NEW_HOST)
    assert f"{NEW_HOST} is a voting member" in added
    members = _members(d)
    assert sorted(members) == sorted(bed.hosts())
    assert members[NEW_HOST]["is_learner"] is False
    hashes = _hashes(d)
    assert len(hashes) == 4 and len(set(hashes.values())) == 1
    assert bed.ssh(NEW_HOST, "systemctl is-active etcd").stdout.strip() == "active"
    for instance in dbhosts.INSTANCES:  # every Patroni node's hosts list follows
        for host in DB_HOSTS:
            assert f"{NEW_ADDRESS}:2379" in _hosts_in_etcd3(bed, host, instance)

    run("member remove", "member", "remove", NEW_HOST, "--yes")
    assert sorted(_members(d)) == ["dcs-00", "dcs-01", "dcs-02"]
    gone = bed.ssh(NEW_HOST, "systemctl is-active etcd; ls /var/lib/etcd /etc/dcs",
                   check=False).stdout
    assert gone.split() == ["inactive"], gone
    for instance in dbhosts.INSTANCES:
        for host in DB_HOSTS:
            assert f"{NEW_ADDRESS}:2379" not in _hosts_in_etcd3(bed, host, instance)
    assert bed.remove_last_host() == NEW_HOST
    assert len(d.agent("keys", "/life/")) == 20  # type: ignore[arg-type]

    # A follower's machine replaced: new disk, new host key, same name and address.
    view = wait_healthy(d)
    host = next(h for h in ("dcs-00", "dcs-01", "dcs-02") if h != view["leader"])
    old_id = next(m for m in view["members"] if m["name"] == host)["id"]  # type: ignore[attr-defined]
    bed.rebuild(host)
    assert bed.ssh(host, "test -e /var/lib/etcd", check=False).returncode != 0
    refused = d.dcsctl("member", "replace", host, "--yes", check=False)
    assert refused.returncode == 4, refused.stderr
    assert f"the SSH host key of {host} has changed" in refused.stderr
    assert f"ssh-keygen -R {host} -f {known}" in refused.stderr
    view = status_of(d)  # nothing changed: the old member is still listed
    assert next(m for m in view["members"] if m["name"] == host)["id"] == old_id  # type: ignore[attr-defined]

    # The operator's step, as the error says: drop the old key, scan the new one and
    # compare its fingerprint with the one the new machine's console shows.
    subprocess.run(["ssh-keygen", "-R", host, "-f", str(known)], check=True,
                   capture_output=True)
    scanned = bed.run(["ssh-keyscan", "-t", "ed25519", host]).stdout
    known.write_text(known.read_text() + scanned)
    on_console = bed.ssh(host, "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub").stdout
    fingerprints = subprocess.run(["ssh-keygen", "-lf", str(known)], check=True,
                                  capture_output=True, text=True).stdout
    assert on_console.split()[1] in fingerprints

    replaced = run("member replace", "member", "replace", host, "--yes")
    assert f"{host} replaced and promoted" in replaced
    members = _members(d)
    assert members[host]["id"] != old_id
    assert len(d.agent("keys", "/life/")) == 20  # type: ignore[arg-type]
    assert len(set(_hashes(d).values())) == 1
    assert "no changes" in d.dcsctl("up").stderr  # the operator's spec file still fits


def _rotations_and_restart(run: Callable[..., str]) -> None:
    run("certs rotate", "certs", "rotate", "--yes")
    out = run("certs rotate --patroni", "certs", "rotate", "--patroni", "--yes")
    deployed = next(line for line in out.split("; ")
                    if "new bundles deployed and verified" in line)
    for instance in dbhosts.INSTANCES:
        for host in DB_HOSTS:
            assert f"{instance.scope}/{host}" in deployed, out
    out = run("certs rotate --ca", "certs", "rotate", "--ca", "--yes")
    if "--finish" in out:
        out = run("certs rotate --ca --finish", "certs", "rotate", "--ca", "--finish",
                  "--yes")
    assert "old CA dropped" in out, out
    run("restart", "restart")


def _name_release(d: Deployment, bed: Testbed, step: Version) -> None:
    mirror = bed.release_mirror()
    assert mirror is not None
    document = yaml.safe_load(d.spec_file.read_text())
    document["install"] = mirror.install(step)
    d.spec_file.write_text(yaml.safe_dump(document, sort_keys=False))


def _upgrade_steps(d: Deployment, bed: Testbed, run: Callable[..., str], name: str,
                   steps: list[tuple[Version, tuple[str, ...]]]) -> None:
    """Each release named by version alone and fetched from the site's mirror, under etcd
    writers too. (Was test_lifecycle's upgrade through the spec: every assertion kept.)"""
    with recording(d, name, max_seconds=900) as upgrading:
        upgrading.took_effect()
        for step, command in steps:
            _name_release(d, bed, step)
            out = run(f"{command[0]} -> {step}", *command)
            assert f"-> {step}" in out
            assert "snapshot before the change" in out
            assert {m["status"]["version"]  # type: ignore[index]
                    for m in _members(d).values()} == {str(step)}
    upgraded = upgrading.history
    assert upgraded is not None and upgrading.error == "", upgrading.error
    assert upgraded.linearizable, upgraded.checker
    assert upgraded.acked_during >= MIN_ACKED_DURING, upgraded
    for host in ("dcs-00", "dcs-01", "dcs-02"):
        unit = bed.ssh(host, "systemctl cat etcd").stdout
        assert "ExecStart=/usr/local/bin/etcd\n" in unit, unit
        running = bed.ssh(host, "sudo readlink /proc/$(systemctl show -p MainPID --value "
                          "etcd)/exe").stdout.strip()
        assert running == "/usr/local/bin/etcd"
    assert len(set(_hashes(d).values())) == 1
    assert "no changes" in d.dcsctl("up").stderr
    print(f"etcd writers through {name}: {upgraded}")


def _away_from_debians_package(d: Deployment, bed: Testbed, run: Callable[..., str]) -> None:
    """Debian's 3.5.16 -> the newest 3.5 release by `up`."""
    # Positive control: straight from Debian's 3.5.16 to 3.6 is not a supported path, and
    # the spec's switch to a release does not slip past that check.
    _name_release(d, bed, NEWEST["3.6"])
    refused = d.dcsctl("up", check=False)
    assert refused.returncode != 0 and "refusing to move etcd 3.5.16" in refused.stderr, (
        refused.stderr)
    assert {m["status"]["version"] for m in _members(d).values()} == {  # type: ignore[index]
        "3.5.16"}
    _upgrade_steps(d, bed, run, "upgrade-to-the-newest-3.5", [(NEWEST["3.5"], ("up",))])


@pytest.mark.timeout(1800)
def test_operations_never_demote_restart_or_lose_a_write_in_two_patroni_scopes(
        db_cluster: Deployment, db_bed: Testbed, tmp_path: Path) -> None:
    d, bed = db_cluster, db_bed
    first_primary = next(h for h, s in _states(bed, dbhosts.FIRST).items()
                         if s.get("role") == "primary")
    watcher = Watcher(bed, dbhosts.INSTANCES, tmp_path, WATCH_MAX_S)
    ops: list[tuple[str, float, float, tuple[dbhosts.Instance, ...]]] = []
    live: list[dbhosts.Instance] = [dbhosts.FIRST]
    try:
        def run(name: str, *argv: str) -> str:
            start = time.time()
            result = d.dcsctl(*argv, timeout=900)
            ops.append((name, start, time.time(), tuple(live)))
            wait_healthy(d)
            return result.stdout + result.stderr

        def writing(instance: dbhosts.Instance) -> None:
            began = time.time()
            wait_until(lambda: _acked_since(watcher, instance.scope, began) >= 5,
                       timeout=60, interval=0.5, what="the writer did not get going",
                       last_error=lambda: watcher.out.read_text()[-1500:])

        writing(dbhosts.FIRST)
        # Off Debian's package first: a second scope is refused on an etcd that lets one
        # scope's user reach another's keys (3.5.16 has four such advisories).
        _away_from_debians_package(d, bed, run)

        # A second scope on the same DCS: Patroni's second instance on the same hosts.
        # `up` (deploy) with the first scope's Patroni running: the second scope's role and
        # user made (an auth change: every token of the first scope's nodes goes stale) and
        # its bundles placed on the database hosts, and the first scope's primary's
        # etcd3.yml (an operator's edit) put back and that Patroni reloaded, in one `up`.
        document = yaml.safe_load(d.spec_file.read_text())
        document["patroni"]["scopes"].append(bed.patroni_scope(dbhosts.SECOND))
        d.spec_file.write_text(yaml.safe_dump(document, sort_keys=False))
        etcd3 = f"{dbhosts.FIRST.bundle_dir}/etcd3.yml"
        bed.ssh(first_primary, f"echo '# edited' | sudo tee -a {etcd3}")
        since = bed.ssh(first_primary, "date +%s").stdout.strip()
        run("up (deploy)", "up")
        assert "# edited" not in bed.ssh(first_primary, f"sudo cat {etcd3}").stdout
        journal = bed.ssh(first_primary, f"sudo journalctl -u {dbhosts.FIRST.unit} --since "
                          f"@{since} --no-pager -o cat").stdout
        assert "Reloaded" in journal, journal  # the running primary reloaded, not restarted
        for host in DB_HOSTS:
            placed = bed.ssh(host, f"sudo ls {dbhosts.SECOND.bundle_dir}").stdout.split()
            assert sorted(placed) == sorted(["ca.crt", f"{host}.crt", f"{host}.key",
                                             "etcd3.yml"]), placed
        start_patroni(bed, dbhosts.SECOND)
        live.append(dbhosts.SECOND)
        writing(dbhosts.SECOND)

        # etcd's own writers too (tests/support/history.py, checked by histcheck) through
        # the rotations and the restart
        with recording(d, "rotate-and-restart", max_seconds=900) as rolled:
            rolled.took_effect()
            _rotations_and_restart(run)
        rotation = rolled.history
        assert rotation is not None and rolled.error == "", rolled.error
        assert rotation.linearizable, rotation.checker
        assert rotation.acked_during >= MIN_ACKED_DURING, rotation
        print(f"etcd writers through the rotations and the restart: {rotation}")
        run("maintenance", "maintenance")
        run("backup", "backup")

        _member_operations(d, bed, run)
        _upgrade_steps(d, bed, run, "the-rolling-upgrade", [
            (NEWEST["3.6"], ("upgrade", "--to", str(NEWEST["3.6"]))),
            (NEWEST["3.7"], ("upgrade", "--to", str(NEWEST["3.7"])))])

        # the last operation's aftermath: every node back on the DCS after it
        settled = ops[-1][2]
        wait_until(lambda: _all_seen_after(watcher, settled), timeout=60, interval=1,
                   what="a node did not read the DCS after the last operation")

        # Positive control: a switchover demotes the first scope's primary and restarts
        # its PostgreSQL as a replica; the same analysis must see both.
        control = time.time()
        bed.run(["curl", "-s", "--fail", "--max-time", "30", "-XPOST",
                 f"http://{DB_HOSTS[first_primary]}:8008/switchover",
                 "-d", json.dumps({"leader": first_primary})])
        wait_until(lambda: (states := _formed(bed, dbhosts.FIRST)) is not None
                   and states[first_primary]["role"] == "replica", timeout=120, interval=1,
                   what="the switchover did not complete")
        switched = time.time()
        wait_until(lambda: _all_seen_after(watcher, switched), timeout=60,
                   interval=1, what="the nodes did not settle after the switchover")
        ended = time.time()
    finally:
        errors = watcher.stop()
    records = watcher.records()
    present = watcher.present()

    rows = []
    bounds = [*(start for _, start, _, _ in ops), control]
    for (name, start, finished, scopes), end in zip(ops, bounds[1:], strict=True):
        for instance in scopes:  # the second scope is watched from its start on
            window = pgwatch.summarise(records, instance.scope, start, end)
            rows.append((name, finished - start, window))
    table = ["operation | scope | took s | demotions | promotions | PG restarts | "
             "longest dcs_last_seen age s | writes acked (failed)",
             "---|---|---|---|---|---|---|---"]
    table += [f"{name} | {w.scope} | {took:.1f} | {w.demotions} | {w.promotions} | "
              f"{w.pg_restarts} | {w.longest_seen_age_s:.1f} | {w.acked} ({w.failed})"
              for name, took, w in rows]
    print("\n" + "\n".join(table))
    lost = {i.scope: sorted(set(pgwatch.acknowledged(records, i.scope))
                            - set(present[i.scope])) for i in dbhosts.INSTANCES}
    counts = {s: len(pgwatch.acknowledged(records, s)) for s in lost}
    print(f"writes acknowledged {counts}, lost {lost}")

    for name, _, w in rows:
        assert (w.demotions, w.promotions, w.pg_restarts) == (0, 0, 0), (name, w, errors)
        assert w.longest_seen_age_s < dbhosts.TTL, (name, w)
        assert w.samples > 0 and w.acked > 0, (name, w)  # watched and written throughout
    assert lost == {i.scope: [] for i in dbhosts.INSTANCES}, lost
    # the positive control: the switchover is seen as what it is
    seen = pgwatch.summarise(records, dbhosts.FIRST.scope, control, ended)
    assert seen.demotions == 1 and seen.promotions == 1, seen
    assert seen.pg_restarts >= 1, seen
    calm = pgwatch.summarise(records, dbhosts.SECOND.scope, control, ended)
    assert (calm.demotions, calm.pg_restarts) == (0, 0), calm
