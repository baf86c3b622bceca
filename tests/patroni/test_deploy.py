"""`up` deploys each Patroni node's bundle over SSH, and a renewed certificate is revoked
only once the node has reached etcd with the new one.

The database host is a real sshd on a loopback address with a real Patroni + PostgreSQL
listening on the same address; etcd is a lab cluster. Patroni runs on a configuration
directory that links the deployed etcd3.yml, as on a database host.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from dcsctl import pki
from dcsctl.hosts.local import LocalHost
from dcsctl.ops.patroni_nodes import reconnect, seen_after
from dcsctl.patroni_node import Endpoint
from dcsctl.patroni_rest import PatroniApi
from tests.patroni.harness import PATRONI_BIN, RoleSampler, patroni_node
from tests.patroni.test_node_credentials import TIMING
from tests.ssh.sshd import SshLab, start_ssh_lab
from tests.support import cluster_of, poll
from tests.support.lab import LabCluster

SCOPE, NODE = "demo", "db-00"


@dataclass
class DbHost:
    address: str
    bundle_dir: Path
    ssh: SshLab


@pytest.fixture
def db_host(lab: LabCluster, tmp_path: Path) -> Iterator[DbHost]:
    """db-00: an sshd on .50 of the lab cluster's /24, and a bundle dir Patroni (the
    postgres user) can reach (outside pytest's 0700 tmp dirs)."""
    address = lab.addresses()[0].rsplit(".", 1)[0] + ".50"
    ssh = start_ssh_lab(tmp_path / "ssh", {NODE: address})  # may fail: nothing made yet
    root = Path(tempfile.mkdtemp(prefix="dcsctl-db-"))
    root.chmod(0o755)
    try:
        yield DbHost(address, root / "etcd", ssh)
    finally:
        ssh.stop()
        shutil.rmtree(root, ignore_errors=True)


def _with_patroni(lab: LabCluster, db: DbHost, *,
                  extra: list[dict[str, object]] | None = None, **node: object) -> None:
    """The spec's scope with db-00 (and `extra` nodes)."""
    document = lab.document()
    document["ssh"] = {"config_file": str(db.ssh.ssh_config), "sudo": False}
    document["patroni"] = {"scopes": [{"name": SCOPE, "nodes": [
        {"name": NODE, "address": db.address, "ssh": NODE,
         "bundle_dir": str(db.bundle_dir), **node}, *(extra or [])]}]}
    lab.spec_file.write_text(yaml.safe_dump(document))


def _revoked(lab: LabCluster) -> set[int]:
    path = lab.state / "pki" / "revoked.json"
    return {int(e["serial"]) for e in json.loads(path.read_text())} if path.exists() else set()


def _owner(path: Path) -> str:
    return pwd.getpwuid(path.stat().st_uid).pw_name


def _started(lab: LabCluster) -> dict[str, tuple[int, int]]:
    """Each member's PID and when its pidfile was written (its start), in ns."""
    found = {}
    for name in lab.names():
        pidfile = lab.state / "members" / name / "etcd.pid"
        found[name] = (int(json.loads(pidfile.read_text())["pid"]), pidfile.stat().st_mtime_ns)
    return found


def test_up_deploys_the_bundle_and_revokes_a_replaced_certificate_only_once_verified(
    lab: LabCluster, db_host: DbHost
) -> None:
    if not (PATRONI_BIN / "patroni").exists():
        pytest.fail("Patroni is not installed in .tools/patroni: run scripts/setup")
    _with_patroni(lab, db_host)
    planned = lab.ok("up", "--plan").out
    assert f"patroni {SCOPE}/{NODE} ({NODE})" in planned
    assert f"+ {db_host.bundle_dir}/etcd3.yml" in planned

    first = lab.ok("up", "--json").json()
    phases = {o["name"]: o for o in first["phases"]}  # type: ignore[union-attr]
    assert "Patroni does not answer" in str(phases["patroni"]["note"])
    key, cert = db_host.bundle_dir / f"{NODE}.key", db_host.bundle_dir / f"{NODE}.crt"
    etcd3 = db_host.bundle_dir / "etcd3.yml"
    assert {p.name: (oct(p.stat().st_mode & 0o777), _owner(p))
            for p in db_host.bundle_dir.iterdir()} == {
        "ca.crt": ("0o644", "postgres"), f"{NODE}.crt": ("0o644", "postgres"),
        f"{NODE}.key": ("0o600", "postgres"), "etcd3.yml": ("0o600", "postgres")}
    section = yaml.safe_load(etcd3.read_text())["etcd3"]
    assert section["cert"] == str(cert) and section["username"] == f"patroni-{SCOPE}"
    password = section["password"]
    assert password not in db_host.ssh.commands.read_text()  # it travelled on stdin
    assert "= " + str(etcd3) in lab.ok("up", "--plan").out
    again = lab.ok("up", "--json").json()
    assert {o["name"]: o["note"] for o in again["phases"]}["patroni"] == "unchanged"  # type: ignore[union-attr]
    # Renewed while Patroni does not answer: the certificate it replaced is on no host
    # any more, and not revoked either until a run sees the node reach etcd: pending.
    placed = cert.read_bytes()
    kept = lab.state / "patroni" / SCOPE / NODE
    (kept / f"{NODE}.crt").unlink()
    lab.ok("up")
    assert cert.read_bytes() != placed
    assert pki.serial_number(placed) not in _revoked(lab)
    assert len(list((lab.state / "pki").glob("superseded/*.crt"))) == 1
    # A file there this cluster's CRL cannot revoke (put by hand, not even PEM) is
    # replaced, neither kept nor revoked (it stopped the deploy with a traceback).
    issued = cert.read_bytes()
    cert.write_bytes(b"not a certificate\n")
    lab.ok("up")
    assert cert.read_bytes() == issued
    assert len(list((lab.state / "pki").glob("superseded/*.crt"))) == 1

    etcd = [Endpoint(a, 2379) for a in lab.addresses()]
    with patroni_node(SCOPE, NODE, db_host.address, None, None, etcd3_file=etcd3,
                      timing=TIMING) as node:
        try:
            node.wait_primary()
        except TimeoutError:
            pytest.fail(f"Patroni never became primary:\n{node.log_tail()}")
        api = PatroniApi(NODE, node.api)
        started = api.state().state.postmaster_start_time
        with RoleSampler(node) as sampler:
            # Nothing to deploy, but the node reaches etcd now: what is pending goes.
            lab.ok("up")
            assert pki.serial_number(placed) in _revoked(lab)
            assert not list((lab.state / "pki").glob("superseded/*.crt"))
            assert pki.serial_number(cert.read_bytes()) not in _revoked(lab)
            # A renewal: the control machine's certificate gone, `up` issues another.
            first_cert = cert.read_bytes()
            (kept / f"{NODE}.crt").unlink()
            renewed = lab.ok("up", "--json").json()
            note = {o["name"]: o["note"] for o in renewed["phases"]}["patroni"]  # type: ignore[union-attr]
            second_cert = cert.read_bytes()
            assert second_cert != first_cert
            assert "reached etcd on new connections" in str(note), note
            assert pki.serial_number(first_cert) in _revoked(lab)
            # The positive control: with the first certificate revoked, a fresh
            # connection still works, so Patroni presents the second.
            done = reconnect(LocalHost(), NODE, api, Endpoint(db_host.address, 8008), etcd)
            seen_after(api, done.node_time, timeout=20)

            # A node that cannot read its new key (owner: not Patroni's user) does not
            # come back: dcsctl puts the previous files back and revokes nothing.
            _with_patroni(lab, db_host, owner="nobody", group="nogroup")
            (kept / f"{NODE}.crt").unlink()
            failed = lab.dcsctl("up")
            assert failed.code == 4, failed.err
            assert f"{SCOPE}/{NODE}" in failed.err
            assert "its certificate was not revoked" in failed.err
            assert cert.read_bytes() == second_cert and _owner(key) == "postgres"
            assert pki.serial_number(second_cert) not in _revoked(lab)
            done = reconnect(LocalHost(), NODE, api, Endpoint(db_host.address, 8008), etcd)
            seen_after(api, done.node_time, timeout=20)

            # `certs check` reads what the node holds: not what dcsctl issued last.
            checked = lab.dcsctl("certs", "check", "--json")
            row = next(r for r in json.loads(checked.out) if r["holder"] == f"{SCOPE}/{NODE}")
            assert checked.code == 5 and row["verdict"] == "drift", row
            assert row["path"] == str(cert)

            # The owner corrected: the certificate issued by the failed run goes out.
            _with_patroni(lab, db_host)
            lab.ok("up")
            checked = lab.ok("certs", "check", "--json")
            row = next(r for r in json.loads(checked.out) if r["holder"] == f"{SCOPE}/{NODE}")
            assert row["verdict"] == "ok", row
            assert cert.read_bytes() not in (first_cert, second_cert)
            assert pki.serial_number(second_cert) in _revoked(lab)
        assert sampler.never_demoted(), sampler.roles
        assert api.state().state.postmaster_start_time == started  # never restarted
    removed = lab.ok("patroni", "remove", SCOPE, "--yes")
    assert f"bundle removed from {NODE}" in removed.out
    assert not list(db_host.bundle_dir.iterdir())
    assert "still in the spec" in removed.err


def test_a_restart_is_refused_while_the_primarys_deployed_certificate_is_revoked(
    lab: LabCluster, db_host: DbHost
) -> None:
    """The issue's measured outage: revoked, Patroni stays primary on its open connection;
    a routine `dcsctl restart` made it reconnect and it demoted 21.6 s later. Now the
    restart refuses, naming the node; `up` deploys a good certificate; then it runs."""
    if not (PATRONI_BIN / "patroni").exists():
        pytest.fail("Patroni is not installed in .tools/patroni: run scripts/setup")
    _with_patroni(lab, db_host)
    lab.ok("up")
    etcd3 = db_host.bundle_dir / "etcd3.yml"
    cert = db_host.bundle_dir / f"{NODE}.crt"
    with patroni_node(SCOPE, NODE, db_host.address, None, None, etcd3_file=etcd3,
                      timing=TIMING) as node:
        try:
            node.wait_primary()
        except TimeoutError:
            pytest.fail(f"Patroni never became primary:\n{node.log_tail()}")
        api = PatroniApi(NODE, node.api)
        seen_after(api, api.state().node_time or 0, timeout=30)
        started = api.state().state.postmaster_start_time
        # What the node itself says, and what is on its host.
        (found,) = lab.ok("patroni", "status", SCOPE, "--json").json()["nodes"]  # type: ignore[misc]
        assert (found["name"], found["role"], found["reachable"], found["version"]) == (
            NODE, "primary", True, "4.1.5")
        assert found["serial_deployed"] == found["serial_issued"] is not None
        assert 0 <= found["dcs_last_seen_age_s"] <= 30 and found["days_left"] > 300
        healthy = lab.ok("patroni", "doctor", SCOPE, "--json").json()
        verdicts = {c["check"]: c["verdict"] for c in healthy["checks"]}  # type: ignore[union-attr]
        assert verdicts == {"reachable": "ok", "version": "ok", "dcs": "ok",
                            "certificate": "ok", "etcd3.yml": "ok", "hosts": "ok", "ttl": "ok",
                            "retry_timeout": "ok", "failsafe_mode": "warn", "access": "ok"}
        with RoleSampler(node) as sampler:
            lab.ok("certs", "revoke", str(cert), "--yes")
            sick = lab.dcsctl("patroni", "doctor", SCOPE)
            assert sick.code == 4 and "revoked" in sick.out + sick.err, sick.err
            refused = lab.dcsctl("restart")
            assert refused.code == 4, refused.err
            assert f"{SCOPE}/{NODE}" in refused.err and "is revoked" in refused.err, refused.err
            assert "dcsctl up" in refused.err and "--accept-patroni-risk" in refused.err
            # Consent names the node: another name does not open the door.
            assert lab.dcsctl("restart", "--accept-patroni-risk", f"{SCOPE}/db-99").code == 4

            # `up` with a setting that restarts every member (what docs/patroni.md says to
            # do for auth_token_ttl_s) deploys the nodes' bundles first. A node it cannot
            # reach (db-01: no sshd, no Patroni) refuses the restart, naming it; the
            # revoked db-00 is named too (the deploy stopped at db-01, a replica first).
            document = lab.document()
            document.setdefault("etcd", {})["auth_token_ttl_s"] = 3600
            lab.spec_file.write_text(yaml.safe_dump(document))
            away = db_host.address.rsplit(".", 1)[0] + ".51"
            _with_patroni(lab, db_host, extra=[{"name": "db-01", "address": away,
                                                "ssh": away}])
            before = _started(lab)
            refused = lab.dcsctl("up")
            assert refused.code == 4, refused.err
            assert (f"Patroni nodes {SCOPE}/{NODE}, {SCOPE}/db-01 would then be refused"
                    in refused.err), refused.err
            assert "is revoked" in refused.err and "deploy before the restart" in refused.err
            assert f"--accept-patroni-risk {SCOPE}/db-01" in refused.err, refused.err
            # Consent is per node: db-01's accepted, the revoked db-00 still refuses.
            consented = lab.dcsctl("up", "--accept-patroni-risk", f"{SCOPE}/db-01")
            assert consented.code == 4, consented.err
            assert f"Patroni node {SCOPE}/{NODE} would then be refused" in consented.err, (
                consented.err)
            assert _started(lab) == before  # no member restarted

            _with_patroni(lab, db_host)  # db-01 out of the spec
            planned = lab.ok("up", "--plan").out  # the restart is still to do, and guarded
            assert "~ restart etcd (settings written by an earlier run)" in planned, planned
            assert "patroni  before restarting members" in planned, planned
            restarted = lab.ok("up", "--json").json()
            note = str({o["name"]: o["note"]  # type: ignore[union-attr]
                        for o in restarted["phases"]}["start"])
            assert note.startswith("Patroni bundles first: "), note
            assert "reached etcd on new connections" in note and "(restarted)" in note, note
            restarts = _started(lab)
            assert all(restarts[n][0] != before[n][0] for n in before), (before, restarts)
            # The new certificate was on the node before any member restarted.
            assert cert.stat().st_mtime_ns < min(at for _, at in restarts.values())
            assert pki.serial_number(cert.read_bytes()) not in _revoked(lab)
            lab.ok("restart")
            after = api.state().node_time or 0
            seen_after(api, after, timeout=30)  # it reached etcd after the restart

            # Membership changes keep the node's etcd3.yml hosts list right.
            spare = lab.addresses()[0].rsplit(".", 1)[0] + ".13"
            lab.ok("member", "add", f"{lab.name}-3", "--address", spare)
            hosts = yaml.safe_load(etcd3.read_text())["etcd3"]["hosts"]
            assert f"{spare}:2379" in hosts and len(hosts) == 4
            gone = lab.addresses()[0]
            lab.ok("member", "remove", f"{lab.name}-0", "--yes")
            hosts = yaml.safe_load(etcd3.read_text())["etcd3"]["hosts"]
            assert len(hosts) == 3 and f"{gone}:2379" not in hosts
            seen_after(api, api.state().node_time or 0, timeout=30)
        assert sampler.never_demoted(), sampler.roles
        assert api.state().state.postmaster_start_time == started

        # doctor reads the live members from etcd, not the spec: a member removed behind
        # dcsctl's back (still in the spec, still in the node's hosts) is named.
        cluster = cluster_of(lab)
        with cluster.admin_client() as client:
            (spare_member,) = [m for m in client.member_list()
                               if f"{spare}:2379" in " ".join(m.client_urls)]
            client.member_remove(spare_member.id)
        stale = lab.dcsctl("patroni", "doctor", SCOPE)
        assert stale.code == 4, stale.err
        assert f"{NODE} hosts: etcd3.yml hosts not a live member: {spare}:2379" in stale.err, (
            stale.err)


def test_key_and_ca_rotations_deploy_to_two_nodes_and_a_failed_node_leaves_no_old_certificate_valid(
    lab: LabCluster, tmp_path: Path
) -> None:
    """`certs rotate --patroni` and `certs rotate --ca` put the new bundles on the nodes
    themselves, verify, and revoke what they replaced; the primary never notices.

    The key rotation meets a primary that cannot read its new key: the replica goes
    first and is verified, its old certificate revoked at once (the next run shows it
    `unchanged`, its old certificate on no host: nothing would revoke it later); then the
    run stops naming the primary, whose old certificate, back in use, is not revoked.
    Once the owner is fixed, `up` deploys it and revokes that one too."""
    if not (PATRONI_BIN / "patroni").exists():
        pytest.fail("Patroni is not installed in .tools/patroni: run scripts/setup")
    first, second = "db-00", "db-01"  # db-00 the primary: deployed last
    prefix = lab.addresses()[0].rsplit(".", 1)[0]
    addresses = {first: f"{prefix}.50", second: f"{prefix}.51"}
    ssh = start_ssh_lab(tmp_path / "ssh", addresses)  # may fail: nothing made yet
    root = Path(tempfile.mkdtemp(prefix="dcsctl-db-"))
    root.chmod(0o755)
    bundle_dirs = {name: root / name / "etcd" for name in addresses}

    def spec(**primary: object) -> None:
        document = lab.document()
        document["ssh"] = {"config_file": str(ssh.ssh_config), "sudo": False}
        document["patroni"] = {"scopes": [{"name": SCOPE, "nodes": [
            {"name": name, "address": addresses[name], "ssh": name,
             "bundle_dir": str(bundle_dirs[name]), **(primary if name == first else {})}
            for name in addresses]}]}
        lab.spec_file.write_text(yaml.safe_dump(document))

    def cert(name: str) -> bytes:
        return (bundle_dirs[name] / f"{name}.crt").read_bytes()

    def serial(name: str) -> int:
        return pki.serial_number(cert(name))

    def crl() -> set[int]:
        """What every member's etcd checks new connections against (dcsctl's record)."""
        found = {frozenset(pki.revoked_serials(lab.member_tls(m, "crl").read_bytes()))
                 for m in lab.names()}
        assert found == {frozenset(_revoked(lab))}, found
        return _revoked(lab)

    try:
        for directory in bundle_dirs.values():
            directory.parent.mkdir()
            directory.parent.chmod(0o755)
        # The spec names an owner for db-00 that Patroni does not run as, and someone put
        # the first bundle right by hand: every bundle dcsctl writes there from now on is
        # one Patroni cannot read (the spec `certs rotate` uses is the one `up` recorded).
        spec(owner="nobody", group="nogroup")
        lab.ok("up")  # the files placed; no Patroni answers yet
        postgres = pwd.getpwnam("postgres")
        for path in bundle_dirs[first].iterdir():
            os.chown(path, postgres.pw_uid, postgres.pw_gid)
        with contextlib.ExitStack() as nodes:
            primary = nodes.enter_context(patroni_node(
                SCOPE, first, addresses[first], None, None,
                etcd3_file=bundle_dirs[first] / "etcd3.yml", timing=TIMING))
            try:
                primary.wait_primary()
                replica = nodes.enter_context(patroni_node(
                    SCOPE, second, addresses[second], None, None,
                    etcd3_file=bundle_dirs[second] / "etcd3.yml", timing=TIMING))
                poll(lambda: replica.role() == "replica"
                     and replica.state().get("state") in ("running", "streaming"),
                     120, f"{second} did not become a replica")
            except TimeoutError:
                pytest.fail(f"Patroni did not start:\n{primary.log_tail()}")
            api = PatroniApi(first, primary.api)
            started = api.state().state.postmaster_start_time
            old = {name: cert(name) for name in addresses}
            keys = {name: (bundle_dirs[name] / f"{name}.key").read_bytes()
                    for name in addresses}
            with RoleSampler(primary) as sampler:
                failed = lab.dcsctl("certs", "rotate", "--patroni")
                assert failed.code == 4, failed.err
                assert f"{SCOPE}/{first}" in failed.err, failed.err
                assert f"{SCOPE}/{second}" not in failed.err, failed.err
                assert cert(second) != old[second]  # deployed and verified first
                assert cert(first) == old[first]  # put back: in use again
                revoked = crl()
                assert pki.serial_number(old[second]) in revoked
                assert pki.serial_number(old[first]) not in revoked
                # By hand, `certs revoke --superseded` leaves a listed node's kept
                # certificates to the run that verifies its new bundle: db-00's is the
                # one it uses again (revoking it demotes the primary at its next reconnect).
                left = lab.ok("certs", "revoke", "--superseded", "--yes")
                assert f"left to `dcsctl up`: {SCOPE}/{first}" in left.out, left.out
                assert pki.serial_number(old[first]) not in crl()

                spec()  # the owner fixed: `up` deploys the key the failed run issued
                lab.ok("up")
                assert {name: (bundle_dirs[name] / f"{name}.key").read_bytes() != key
                        for name, key in keys.items()} == {first: True, second: True}
                revoked = crl()
                assert {pki.serial_number(c) for c in old.values()} <= revoked
                assert not {serial(n) for n in addresses} & revoked
                assert not list((lab.state / "pki").glob("superseded/*.crt"))

                rotated = {name: cert(name) for name in addresses}
                old_ca = (lab.state / "pki" / "ca.crt").read_bytes()
                done = lab.ok("certs", "rotate", "--ca").out
                assert "old CA dropped" in done, done
                new_ca = (lab.state / "pki" / "ca.crt").read_bytes()
                assert new_ca != old_ca
                for name in addresses:
                    assert (bundle_dirs[name] / "ca.crt").read_bytes() == new_ca
                    assert pki.is_issued_by(cert(name), new_ca)
                    assert pki.serial_number(rotated[name]) in _revoked(lab)
                etcd = [Endpoint(a, 2379) for a in lab.addresses()]
                reopened = reconnect(LocalHost(), first, api,
                                     Endpoint(addresses[first], 8008), etcd)
                seen_after(api, reopened.node_time, timeout=20)  # new CA end to end
            assert sampler.never_demoted(), sampler.roles
            assert api.state().state.postmaster_start_time == started
    finally:
        ssh.stop()
        shutil.rmtree(root, ignore_errors=True)
