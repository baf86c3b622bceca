"""Patroni nodes kept on the DCS over time, on one shared deployment: a lab cluster, a
real sshd as each database host and a real Patroni 4.1.5 + PostgreSQL primary on its
address, running on the bundle `up` deployed (a configuration directory that links the
deployed etcd3.yml, as on a database host).

Two scopes, `demo` (db-00, REST API over https) and `other` (db-10), one node each, all
deployed by one `up`. The tests share the deployment (each Patroni start costs ~15 s of
CI) and leave it as they found it, every node primary on a bundle dcsctl issued, except
the last, which removes scope `other`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from dcsctl import pki
from dcsctl.etcd.gateway import Answer, Gateway
from dcsctl.etcd.tls import ClientTls
from dcsctl.files import atomic_write
from dcsctl.hosts.local import LocalHost
from dcsctl.identity import Identity
from dcsctl.ops.patroni_nodes import reconnect, seen_after
from dcsctl.patroni_node import Endpoint
from dcsctl.patroni_rest import PatroniApi
from dcsctl.spec import KeyType
from dcsctl.wait import wait_until
from tests.monitoring.servers import get_json, node_exporter, prometheus
from tests.patroni.harness import (
    OS_USER,
    PATRONI_BIN,
    PatroniNode,
    RestTls,
    RoleSampler,
    patroni_node,
)
from tests.patroni.test_node_credentials import TIMING
from tests.ssh.sshd import SshLab, start_ssh_lab
from tests.support.lab import LabCluster, lab_clusters, loopback_subnet


@dataclass(frozen=True)
class Db:
    """One database host: its scope, its sshd alias and address, its bundle dir; with
    `rest_tls`, Patroni's REST API serves https."""

    scope: str
    name: str
    address: str
    bundle_dir: Path
    rest_tls: RestTls | None = None

    @property
    def cert(self) -> Path:
        return self.bundle_dir / f"{self.name}.crt"


@dataclass
class Deployment:
    lab: LabCluster
    ssh: SshLab
    dbs: list[Db]
    nodes: dict[str, PatroniNode]

    def api(self, db: Db) -> PatroniApi:
        return PatroniApi(db.name, self.nodes[db.name].api,
                          str(db.rest_tls.ca) if db.rest_tls else None)

    def etcd(self) -> list[Endpoint]:
        return [Endpoint(a, 2379) for a in self.lab.addresses()]

    def reconnect_and_wait(self, db: Db) -> None:
        """Make Patroni open new connections with the files now on disk, and wait until it
        has read the DCS on them: the files work."""
        api = self.api(db)
        done = reconnect(LocalHost(), db.name, api, Endpoint(db.address, 8008), self.etcd())
        seen_after(api, done.node_time, timeout=30)


def _spec(lab: LabCluster, ssh: SshLab, dbs: list[Db], *,
          rest_ca: Path | None = None) -> None:
    """The spec's patroni: section for `dbs`; `rest_ca` instead of the right CA file."""
    document = lab.document()
    document["ssh"] = {"config_file": str(ssh.ssh_config), "sudo": False}
    scopes: dict[str, list[dict[str, object]]] = {}
    for db in dbs:
        https = ({"rest_api": f"https://{db.address}:8008",
                  "rest_api_ca_file": str(rest_ca or db.rest_tls.ca)} if db.rest_tls else {})
        scopes.setdefault(db.scope, []).append(
            {"name": db.name, "address": db.address, "ssh": db.name,
             "bundle_dir": str(db.bundle_dir), **https})
    document["patroni"] = {"scopes": [{"name": scope, "nodes": nodes}
                                      for scope, nodes in scopes.items()]}
    lab.spec_file.write_text(yaml.safe_dump(document))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if not (PATRONI_BIN / "patroni").exists():
        pytest.fail("Patroni is not installed in .tools/patroni: run scripts/setup")
    work = tmp_path_factory.mktemp("upkeep")
    with contextlib.ExitStack() as stack:
        lab = stack.enter_context(lab_clusters(work))()
        base = lab.addresses()[0].rsplit(".", 1)[0]
        # Bundle dirs Patroni (the postgres user) can reach: outside pytest's 0700 dirs.
        root = Path(tempfile.mkdtemp(prefix="dcsctl-upkeep-"))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        root.chmod(0o755)
        address = f"{base}.50"
        # Two scopes on this DCS, one node each (db-10's REST API plain http).
        dbs = [Db("demo", "db-00", address, root / "db-00",
                  _rest_tls(root / "db-00-rest", work / "rest-ca.crt", address)),
               Db("other", "db-10", f"{base}.51", root / "db-10")]
        ssh = start_ssh_lab(work / "ssh", {db.name: db.address for db in dbs})
        stack.callback(ssh.stop)
        _spec(lab, ssh, dbs)
        lab.ok("up")
        nodes = {}
        for db in dbs:
            node = stack.enter_context(patroni_node(
                db.scope, db.name, db.address, None, None,
                etcd3_file=db.bundle_dir / "etcd3.yml", timing=TIMING,
                rest_tls=db.rest_tls))
            nodes[db.name] = node
        for node in nodes.values():
            try:
                node.wait_primary()
            except TimeoutError:
                pytest.fail(f"Patroni never became primary:\n{node.log_tail()}")
        yield Deployment(lab, ssh, dbs, nodes)


# A CA of the DBA's (not the DCS's) for Patroni's REST API certificates.
REST_CA = pki.issue_ca("db-rest-ca", KeyType.ECDSA_P256, 30, dt.datetime.now(dt.UTC))


def _rest_identity(address: str) -> Identity:
    return pki.issue(REST_CA, pki.Role.MEMBER, common_name="patroni-rest",
                     sans=pki.SubjectAltNames(ips=(ipaddress.ip_address(address),)),
                     key_type=KeyType.ECDSA_P256, days=30, now=dt.datetime.now(dt.UTC))


def _place_rest_identity(tls: RestTls, served: Identity) -> None:
    _as_postgres(tls.keyfile, served.key_pem, 0o600)
    _as_postgres(tls.certfile, served.cert_pem, 0o644)


def _rest_tls(directory: Path, ca_file: Path, address: str) -> RestTls:
    """Patroni's REST API certificate for `address`, readable by postgres; the CA's
    certificate where the control machine reads it (rest_api_ca_file)."""
    directory.mkdir(mode=0o755)
    tls = RestTls(directory / "rest.crt", directory / "rest.key", ca_file)
    _place_rest_identity(tls, _rest_identity(address))
    ca_file.write_bytes(REST_CA.cert_pem)
    return tls


def _served_serial(address: str) -> int | None:
    """The serial of the certificate Patroni's REST API presents now (unverified); None
    while it answers no handshake (it resets connections while it reloads)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((address, 8008), timeout=5) as raw, \
                context.wrap_socket(raw) as wrapped:
            der = wrapped.getpeercert(binary_form=True)
    except OSError:  # ssl.SSLError and ConnectionResetError included
        return None
    assert der is not None
    return pki.serial_number(ssl.DER_cert_to_PEM_cert(der).encode())


def _serve_rest_identity(node: PatroniNode, db: Db, served: Identity) -> None:
    """Patroni re-reads restapi.certfile on SIGHUP (a reload, no restart) when its
    serial changed: place `served`, signal, and wait until the REST API presents it."""
    assert db.rest_tls is not None and node.process is not None
    _place_rest_identity(db.rest_tls, served)
    os.kill(node.process.pid, signal.SIGHUP)
    serial = pki.serial_number(served.cert_pem)
    wait_until(lambda: _served_serial(db.address) == serial, timeout=30,
               what=f"{db.name}'s REST API did not present its new certificate")


def _ca(lab: LabCluster) -> Identity:
    pki_dir = lab.state / "pki"
    return Identity((pki_dir / "ca.crt").read_bytes(), (pki_dir / "ca.key").read_bytes())


def _as_postgres(path: Path, content: bytes, mode: int) -> None:
    user = pwd.getpwnam(OS_USER)
    atomic_write(path, content, mode)
    os.chown(path, user.pw_uid, user.pw_gid)


def _fact(textfiles: Path, lab: LabCluster, holder: str) -> float:
    """The certificate expiry dcsctl's textfile holds for `holder` (epoch seconds)."""
    text = (textfiles / f"dcsctl-{lab.name}-certs.prom").read_text()
    wanted = f'holder="{holder}"'
    (line,) = [line for line in text.splitlines()
               if line.startswith("dcsctl_certificate_expiry_timestamp_seconds{")
               and wanted in line]
    return float(line.rsplit(" ", 1)[1])


def _query(prometheus_url: str, query: str) -> list[dict[str, object]]:
    found = get_json(f"{prometheus_url}/api/v1/query?"
                     + urllib.parse.urlencode({"query": query}))["data"]
    assert isinstance(found, dict) and isinstance(found["result"], list)
    return found["result"]


def _expiring(prometheus_url: str) -> set[str]:
    """Holders whose DcsctlCertificateExpiring alert is pending or firing."""
    alerts = _query(prometheus_url, 'ALERTS{alertname="DcsctlCertificateExpiring"}')
    return {str(a["metric"]["holder"]) for a in alerts}  # type: ignore[index]


def _prometheus_expiry(prometheus_url: str, holder: str) -> float | None:
    found = _query(prometheus_url, "dcsctl_certificate_expiry_timestamp_seconds"
                   f'{{holder="{holder}"}}')
    return float(found[0]["value"][1]) if found else None  # type: ignore[index]


def test_a_bundle_left_near_expiry_raises_the_alert_and_up_renews_it_on_a_running_primary(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The node's bundle as it is 350 days after a 365-day issue (the control machine's
    record and the node's files alike): the certificate alert is raised for that node
    alone, from the certificate the node holds; `up` renews and deploys it without a
    demotion, and the fact, then the alert, follow."""
    lab, db = deployment.lab, deployment.dbs[0]
    holder = f"{db.scope}/{db.name}"
    node, api = deployment.nodes[db.name], deployment.api(db)
    textfiles = tmp_path / "textfile"
    lab.environ["DCSCTL_TEXTFILE_DIR"] = str(textfiles)

    # Time passing, played by the issue date: the CA signs a 365-day certificate that
    # began 350 days ago, kept where dcsctl keeps the node's and placed on the node.
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    old = pki.issue(_ca(lab), pki.Role.CLIENT, common_name=None,
                    organization=f"patroni-{db.scope}", sans=pki.SubjectAltNames(),
                    key_type=KeyType.ECDSA_P256, days=365, now=now - dt.timedelta(days=350))
    kept = lab.state / "patroni" / db.scope / db.name
    atomic_write(kept / f"{db.name}.key", old.key_pem, 0o600)
    atomic_write(kept / f"{db.name}.crt", old.cert_pem, 0o644)
    _as_postgres(db.bundle_dir / f"{db.name}.key", old.key_pem, 0o600)
    _as_postgres(db.cert, old.cert_pem, 0o644)
    deployment.reconnect_and_wait(db)  # Patroni runs on it: it is still valid
    started = api.state().state.postmaster_start_time

    checked = lab.dcsctl("certs", "check", "--json")
    assert checked.code == 5, checked.err
    rows = {r["holder"]: r for r in json.loads(checked.out)}
    assert rows[holder]["verdict"] == "expiring" and rows[holder]["days_left"] in (14, 15)
    assert rows[holder]["path"] == str(db.cert)  # read from the node
    assert {h for h, r in rows.items() if r["verdict"] != "ok"} == {holder}
    old_expiry = pki.inspect(old.cert_pem).not_after.timestamp()
    assert _fact(textfiles, lab, holder) == old_expiry
    # `patroni doctor` fails the node in the same window (exit 4), `up` named as the fix.
    sick = lab.dcsctl("patroni", "doctor", db.scope)
    assert sick.code == 4, sick.err
    assert f"{db.name} certificate: deployed serial {pki.serial_number(old.cert_pem):x}" in (
        sick.err), sick.err
    assert "under 30: expiring" in sick.err and "run `dcsctl up`: it renews" in sick.err

    # The real Prometheus on dcsctl's rules, reading the facts through node_exporter.
    subnet = loopback_subnet()
    prom_ip, exporter_ip = f"{subnet}.1", f"{subnet}.3"
    out = tmp_path / "monitoring"
    lab.ok("monitoring", "--out", str(out), "--facts", f"{exporter_ip}:9100",
           "--scrape-interval", "1s", "--evaluation-interval", "1s")
    logs = tmp_path / "logs"
    logs.mkdir()
    with node_exporter(exporter_ip, textfiles, logs), \
            prometheus(prom_ip, out, tmp_path, logs) as prometheus_url:
        # Raised (pending for its `for: 10m`, then firing) for this node alone, while the
        # members' and the CA's certificates are in the same facts.
        wait_until(lambda: _expiring(prometheus_url) == {holder}, timeout=30,
                   what=f"no DcsctlCertificateExpiring for {holder} alone: "
                   f"{_expiring(prometheus_url)}")
        assert len(_query(prometheus_url, "dcsctl_certificate_expiry_timestamp_seconds")) > 3

        with RoleSampler(node) as sampler:
            renewed = lab.ok("up", "--json").json()
        note = {o["name"]: o["note"] for o in renewed["phases"]}["patroni"]  # type: ignore[union-attr]
        assert f"{holder}: {db.name}.key, {db.name}.crt — reached etcd on new connections" in (
            str(note)), note
        assert f"revoked replaced {pki.serial_number(old.cert_pem):x}" in str(note), note
        new_cert = db.cert.read_bytes()
        new_expiry = pki.inspect(new_cert).not_after.timestamp()
        assert new_expiry - now.timestamp() > 364 * 86400
        assert _fact(textfiles, lab, holder) == new_expiry  # `up` wrote the facts
        wait_until(lambda: _prometheus_expiry(prometheus_url, holder) == new_expiry,
                   timeout=30, what="Prometheus did not read the new expiry")
        wait_until(lambda: not _expiring(prometheus_url), timeout=30,
                   what=f"the alert stayed: {_expiring(prometheus_url)}")
    assert sampler.never_demoted(), sampler.roles
    assert api.state().state.postmaster_start_time == started  # never restarted
    assert {r["verdict"] for r in json.loads(lab.ok("certs", "check", "--json").out)} == {"ok"}
    deployment.reconnect_and_wait(db)  # the old certificate is revoked: the new one works

    # A short leaf_days: the node's certificate is renewed at two thirds of its life, as
    # a member's, not reissued and redeployed by every `up`.
    document = lab.document()
    found_tls = document.get("tls")
    document["tls"] = {"leaf_days": 10}
    lab.spec_file.write_text(yaml.safe_dump(document))
    (kept / f"{db.name}.crt").unlink()
    lab.ok("up")
    short = db.cert.read_bytes()
    assert pki.inspect(short).days_left(dt.datetime.now(dt.UTC)) in (9, 10)
    again = lab.ok("up", "--json").json()
    assert {o["name"]: o["note"] for o in again["phases"]}["patroni"] == "unchanged"  # type: ignore[union-attr]
    assert db.cert.read_bytes() == short
    # ...which `certs check` and `doctor` call expiring all its life: doctor fails it and
    # says why `up` does not renew it yet.
    sick = lab.dcsctl("patroni", "doctor", db.scope)
    assert sick.code == 4 and "`dcsctl up` renews it from" in sick.err, sick.err
    assert "tls.leaf_days under 90" in sick.err, sick.err

    # As the test found it: the default leaf_days, a certificate doctor passes.
    document.pop("tls")
    if found_tls is not None:
        document["tls"] = found_tls
    lab.spec_file.write_text(yaml.safe_dump(document))
    (kept / f"{db.name}.crt").unlink()
    lab.ok("up")
    assert pki.inspect(db.cert.read_bytes()).days_left(dt.datetime.now(dt.UTC)) >= 364


def test_an_https_rest_api_is_verified_against_the_spec_ca_and_a_wrong_ca_is_an_error(
    deployment: Deployment, tmp_path: Path
) -> None:
    """db-00's REST API serves https with a certificate of the DBA's CA, given to dcsctl
    as rest_api_ca_file: `up` deploys and verifies through it, `patroni status` and
    `doctor` read it. Another CA is an error naming the file and the fix, with nothing
    placed on the node; so is a missing CA file, and a REST certificate for another
    address (Patroni re-reads it on SIGHUP); the right ones work again (the positive
    control)."""
    lab, db = deployment.lab, deployment.dbs[0]
    assert db.rest_tls is not None
    holder = f"{db.scope}/{db.name}"
    node, api = deployment.nodes[db.name], deployment.api(db)
    kept = lab.state / "patroni" / db.scope / db.name
    started = api.state().state.postmaster_start_time
    with RoleSampler(node) as sampler:
        (found,) = [n for n in lab.ok("patroni", "status", "--json").json()["nodes"]  # type: ignore[union-attr]
                    if n["name"] == db.name]
        assert (found["reachable"], found["role"], found["version"]) == (True, "primary",
                                                                         "4.1.5"), found
        doctor = lab.ok("patroni", "doctor", db.scope, "--json").json()
        reachable = next(c for c in doctor["checks"] if c["check"] == "reachable")  # type: ignore[union-attr]
        assert reachable["verdict"] == "ok"
        assert reachable["detail"].startswith(f"https://{db.address}:8008: primary")

        # A renewal deployed and verified over https.
        (kept / f"{db.name}.crt").unlink()
        renewed = lab.ok("up", "--json").json()
        note = {o["name"]: o["note"] for o in renewed["phases"]}["patroni"]  # type: ignore[union-attr]
        assert f"{holder}: {db.name}.key, {db.name}.crt — reached etcd on new connections" in (
            str(note)), note

        # Another CA (the DCS's own: a CA dcsctl trusts, but not the one that signed it).
        _spec(lab, deployment.ssh, deployment.dbs, rest_ca=lab.state / "pki" / "ca.crt")
        (kept / f"{db.name}.crt").unlink()  # a renewal is due
        deployed = {p.name: p.read_bytes() for p in db.bundle_dir.iterdir()}
        revoked = (lab.state / "pki" / "revoked.json").read_text()
        refused = lab.dcsctl("up")
        assert refused.code == 4, refused.err
        assert (f"error: db-00: Patroni's REST API at https://{db.address}:8008 presents a "
                f"certificate that rest_api_ca_file {lab.state}/pki/ca.crt does not verify"
                ) in " ".join(refused.err.split()), refused.err
        assert "fix: set the node's rest_api_ca_file" in refused.err, refused.err
        assert {p.name: p.read_bytes() for p in db.bundle_dir.iterdir()} == deployed
        assert (lab.state / "pki" / "revoked.json").read_text() == revoked
        (wrong,) = [n for n in lab.ok("patroni", "status", "--json").json()["nodes"]  # type: ignore[union-attr]
                    if n["name"] == db.name]
        assert not wrong["reachable"] and "does not verify" in wrong["problem"], wrong
        sick = lab.dcsctl("patroni", "doctor", db.scope)
        assert sick.code == 4 and "rest_api_ca_file" in sick.err, sick.err
        _spec(lab, deployment.ssh, deployment.dbs, rest_ca=tmp_path / "missing.crt")
        missing = lab.dcsctl("patroni", "doctor", db.scope)
        assert missing.code == 4 and "cannot be read as CA certificates" in missing.err

        # The right CA, and a REST certificate for another address: the name is the fix.
        _spec(lab, deployment.ssh, deployment.dbs)
        _serve_rest_identity(node, db, _rest_identity("127.0.0.1"))
        misnamed = lab.dcsctl("patroni", "doctor", db.scope)
        assert misnamed.code == 4, misnamed.err
        assert (f"fix: db-00: Patroni's restapi certificate must name {db.address}"
                in misnamed.err), misnamed.err
        _serve_rest_identity(node, db, _rest_identity(db.address))

        # All right again: the pending renewal goes out, verified.
        again = lab.ok("up", "--json").json()
        note = {o["name"]: o["note"] for o in again["phases"]}["patroni"]  # type: ignore[union-attr]
        assert "reached etcd on new connections" in str(note), note
    assert sampler.never_demoted(), sampler.roles
    assert api.state().state.postmaster_start_time == started


@dataclass(frozen=True)
class Credentials:
    """Exactly what a node's host holds: its certificate, key and CA from the bundle dir,
    its user and password from etcd3.yml."""

    tls: ClientTls
    user: str
    password: str

    @classmethod
    def of(cls, deployment: Deployment, db: Db) -> Credentials:
        section = yaml.safe_load((db.bundle_dir / "etcd3.yml").read_text())["etcd3"]
        tls = ClientTls((db.bundle_dir / "ca.crt").read_bytes(), db.cert.read_bytes(),
                        (db.bundle_dir / f"{db.name}.key").read_bytes(),
                        f"{deployment.lab.name}.patroni.test")
        return cls(tls, section["username"], section["password"])

    def gateway(self, deployment: Deployment) -> tuple[Gateway, Answer]:
        """etcd's JSON gateway, Patroni's path, logged in (or refused) as this user."""
        gateway = Gateway(f"https://{deployment.lab.addresses()[0]}:2379", self.tls)
        return gateway, gateway.authenticate(self.user, self.password)


def _leader(gateway: Gateway, scope: str) -> str | None:
    """The scope's leader key's value (Patroni's leader name), None if refused or absent."""
    answer = gateway.get(f"/service/{scope}/leader")
    kvs = answer.body.get("kvs") if answer.status == 200 else None
    if not isinstance(kvs, list) or not kvs:
        return None
    return base64.b64decode(kvs[0]["value"]).decode()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_two_scopes_with_nodes_on_one_dcs_reach_only_their_own_prefix_and_one_goes(
    deployment: Deployment
) -> None:
    """One `up` deployed a node of each scope; each node's bundle reads its own scope's
    leader key (the positive control) and is refused the other's, reading and writing.
    `patroni status` shows both. `patroni remove other` takes other's bundle off db-10
    and leaves db-00 primary, its files and PostgreSQL untouched."""
    lab = deployment.lab
    demo, other = deployment.dbs
    assert (demo.scope, other.scope) == ("demo", "other")
    users = {db.name: yaml.safe_load((db.bundle_dir / "etcd3.yml").read_text())["etcd3"][
        "username"] for db in (demo, other)}
    assert users == {"db-00": "patroni-demo", "db-10": "patroni-other"}

    nodes = lab.ok("patroni", "status", "--json").json()["nodes"]
    assert {(n["scope"], n["name"], n["role"], n["reachable"]) for n in nodes} == {  # type: ignore[union-attr]
        ("demo", "db-00", "primary", True), ("other", "db-10", "primary", True)}

    credentials = {db.name: Credentials.of(deployment, db) for db in (demo, other)}
    for mine, theirs in ((demo, other), (other, demo)):
        gateway, login = credentials[mine.name].gateway(deployment)
        assert login.status == 200, login.body
        assert _leader(gateway, mine.scope) == mine.name  # the positive control
        refused = gateway.get(f"/service/{theirs.scope}/leader")
        assert refused.denied, refused.body
        for key in (f"/service/{theirs.scope}/leader", f"/service/{theirs.scope}/x"):
            assert gateway.put(key, mine.name).denied
        # A range that starts in its own prefix and runs past it is refused too.
        spill = gateway.call("/v3/kv/range", {
            "key": _b64(f"/service/{mine.scope}/"), "range_end": _b64("/service0")})
        assert spill.denied, spill.body

    api = deployment.api(demo)
    started = api.state().state.postmaster_start_time
    files = {p.name: p.read_bytes() for p in demo.bundle_dir.iterdir()}
    with RoleSampler(deployment.nodes[demo.name]) as sampler:
        removed = lab.ok("patroni", "remove", other.scope, "--yes")
        assert f"bundle removed from {other.name}" in removed.out
        assert not list(other.bundle_dir.iterdir())
        _, login = credentials[other.name].gateway(deployment)
        assert login.status != 200, login.body  # other's user is gone from etcd
        # The spec without other: `up` has nothing to do for demo.
        _spec(lab, deployment.ssh, [demo])
        again = lab.ok("up", "--json").json()
        assert {o["name"]: o["note"] for o in again["phases"]}["patroni"] == "unchanged"  # type: ignore[union-attr]
        seen_after(api, api.state().node_time or 0, timeout=30)  # demo reads the DCS
        gateway, login = credentials[demo.name].gateway(deployment)
        assert login.status == 200 and _leader(gateway, demo.scope) == demo.name
    assert sampler.never_demoted(), sampler.roles
    assert api.state().state.postmaster_start_time == started
    assert {p.name: p.read_bytes() for p in demo.bundle_dir.iterdir()} == files
    assert [n["name"] for n in lab.ok("patroni", "status", "--json").json()["nodes"]] == [  # type: ignore[union-attr]
        "db-00"]
