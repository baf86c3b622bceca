"""Day-two operations on real clusters: members, certificates, maintenance, restarts."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from dcsctl import pki
from dcsctl.errors import DcsctlError
from dcsctl.etcd.versions import NEWEST, Version
from tests.faults.scenarios import (
    MAX_WRITE_GAP_S,
    MIN_ACKED_DURING,
    MIN_ACKED_DURING_QUICK,
    member_replace,
    operation,
)
from tests.support import cluster_of, is_gone, poll
from tests.support.history import SLOW
from tests.support.lab import REPO, LabCluster, etcd_bin_dir, risks_of
from tests.support.reads import RecordReads


def _members(lab: LabCluster) -> list[dict[str, object]]:
    members = lab.ok("status", "--json").json()["members"]
    assert isinstance(members, list)
    return members


def _neighbour(lab: LabCluster, last_octet: int) -> str:
    return lab.addresses()[0].rsplit(".", 1)[0] + f".{last_octet}"


def test_add_a_4th_and_5th_member_then_remove_them_spec_file_follows(
        lab: LabCluster, record_reads: RecordReads) -> None:
    # The user's own file: a comment of theirs, and a mode of their choosing.
    users = lab.spec_file.read_text() + "# billing DCS: ask the DBA on call before changes\n"
    lab.spec_file.write_text(users)
    lab.spec_file.chmod(0o600)
    lab.ok("up")
    lab.ok("put", "/k", "before")
    # ... and an edit of theirs not applied yet: the saved spec (which member add changes)
    # still has etcd's default log level; the member changes must not write it back.
    assert "etcd:" not in users
    users += "etcd:\n  log_level: info  # pending: the next up applies it\n"
    lab.spec_file.write_text(users)
    for name, octet in (("extra-3", 13), ("extra-4", 14)):
        address = _neighbour(lab, octet)
        record_reads.take()
        added = lab.ok("member", "add", name, "--address", address)
        assert record_reads.take() == 1  # the cluster's record, read once and handed down
        assert f"+- name: {name}" in added.err  # the change to the file, as a diff
    members = _members(lab)
    assert len(members) == 5
    assert all(m["healthy"] and m["is_learner"] is False for m in members)
    text = lab.spec_file.read_text()
    assert "extra-4" in text  # the -f file follows the membership, in place:
    assert "# billing DCS: ask the DBA on call before changes" in text
    assert "  log_level: info  # pending: the next up applies it\n" in text
    assert "log_level: warn" not in text
    assert lab.spec_file.stat().st_mode & 0o777 == 0o600
    for name in ("extra-4", "extra-3"):
        record_reads.take()
        lab.ok("member", "remove", name, "--yes")
        assert record_reads.take() == 1
    assert [m["name"] for m in _members(lab)] == [f"{lab.name}-{i}" for i in range(3)]
    assert lab.ok("get", "/k").out == "before\n"
    assert lab.spec_file.read_text() == users  # back to exactly the user's file


def test_removing_the_leader_hands_over_first_and_ends_healthy(any_cluster: LabCluster) -> None:
    lab = any_cluster  # the lab's processes and real sshd hosts alike
    lab.ok("up")
    leader = lab.ok("status", "--json").json()["leader"]
    removed = lab.ok("member", "remove", str(leader), "--yes")
    assert "leadership handed to" in removed.err
    # No election gap left for the caller: the very next status finds a leader and every
    # member healthy (CI once saw a 503 /health straight after removing the leader).
    after = lab.ok("status", "--json").json()
    assert after["leader"] not in (None, leader)
    assert len(after["members"]) == 2 and all(m["healthy"] for m in after["members"])


def test_replace_a_member_whose_data_dir_was_deleted(lab: LabCluster, tmp_path: Path,
                                                     record_reads: RecordReads) -> None:
    lab.ok("up")
    lab.ok("put", "/k", "kept")
    victim = _members(lab)[2]
    tls = lab.state / "members" / str(victim["name"]) / "tls"
    old_cert, old_key = (tls / "member.crt").read_bytes(), (tls / "member.key").read_bytes()

    record_reads.take()
    history = member_replace(lab, str(victim["name"]), tmp_path)
    # The removal and the addition both over the record read once.
    assert record_reads.take() == 1
    # Writes went on with two of three while the member was replaced, linearizably.
    assert history.acked_during >= MIN_ACKED_DURING
    assert history.linearizable, history.checker
    after = {m["name"]: m for m in _members(lab)}
    assert after[victim["name"]]["id"] != victim["id"]
    # The replaced member has a new key; its old certificate is revoked everywhere.
    assert (tls / "member.key").read_bytes() != old_key
    for crl in lab.state.glob("members/*/tls/ca.crl"):
        assert pki.serial_number(old_cert) in pki.revoked_serials(crl.read_bytes())
    assert all(m["healthy"] for m in after.values())
    assert lab.ok("get", "/k").out == "kept\n"


def test_member_add_killed_between_add_and_start_is_finished_by_rerun(lab: LabCluster) -> None:
    lab.ok("up")
    address = _neighbour(lab, 13)
    argv = [sys.executable, "-m", "dcsctl", "member", "add", "late", "--address", address,
            "-f", str(lab.spec_file)]
    process = subprocess.Popen(argv, env=lab.environ, stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True, cwd=REPO)
    assert process.stderr is not None
    for line in process.stderr:
        if "[add]" in line:
            process.send_signal(signal.SIGKILL)
            break
    assert process.wait(timeout=60) == -signal.SIGKILL
    rerun = lab.ok("member", "add", "late", "--address", address)
    assert "= [add]" in rerun.err  # observed as done, not added twice
    members = _members(lab)
    assert len(members) == 4 and all(m["healthy"] for m in members)


def test_removal_that_would_break_quorum_is_refused(lab: LabCluster) -> None:
    lab.ok("up")
    members = _members(lab)
    killed = int(str(members[0]["pid"]))
    os.kill(killed, signal.SIGKILL)
    poll(lambda: is_gone(killed) or None, 10, "the killed member did not exit")
    refused = lab.dcsctl("member", "remove", str(members[1]["name"]), "--yes")
    assert refused.code == 5
    assert "quorum" in refused.err and "--force" in refused.err
    still = lab.dcsctl("status", "--json").json()["members"]  # exit 5: one member is down
    assert isinstance(still, list) and len(still) == 3


def test_certs_check_flags_soon_expiring_certificates(lab: LabCluster) -> None:
    document = lab.document()
    document["tls"] = {"leaf_days": 10}
    lab.spec_file.write_text(yaml.safe_dump(document))
    lab.ok("up")
    result = lab.dcsctl("certs", "check", "--json")
    assert result.code == 5
    rows = yaml.safe_load(result.out)
    verdicts = {(r["holder"], r["role"]): r["verdict"] for r in rows}
    assert verdicts[("control machine", "ca")] == "ok"
    assert verdicts[(f"{lab.name}-0", "member")] == "expiring"
    assert all(r["days_left"] <= 10 for r in rows if r["role"] == "member")
    assert "no changes" in lab.ok("up").err  # short lifetimes are not reissued every run


def _served_serial(lab: LabCluster, member: int) -> int:
    pki_dir = lab.state / "pki"
    context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
    context.check_hostname = False
    context.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
    with socket.create_connection((lab.addresses()[member], 2379), timeout=5) as raw, \
            context.wrap_socket(raw) as wrapped:
        der = wrapped.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def test_leaf_rotation_under_writes_loses_no_request(any_cluster: LabCluster,
                                                    tmp_path: Path) -> None:
    lab = any_cluster  # the lab's processes and real sshd hosts alike
    lab.ok("up")
    before = [_served_serial(lab, i) for i in range(3)]
    pids = [m["pid"] for m in _members(lab)]
    history = operation(lab, "certs-rotate-keep-keys", tmp_path,
                        lambda _: lab.ok("certs", "rotate", "--keep-keys"))
    # Certificates are reloaded in place: no call is refused or cut off (one slower than
    # the workload's deadline on a busy machine ends unanswered: SLOW), writes go on.
    assert set(history.failures) <= SLOW, history.failures
    assert history.acked_during >= MIN_ACKED_DURING_QUICK
    assert history.linearizable, history.checker
    after = [_served_serial(lab, i) for i in range(3)]
    assert all(a != b for a, b in zip(after, before, strict=True))
    assert [m["pid"] for m in _members(lab)] == pids  # served without a restart
    assert lab.ok("status", "--json").json()["healthy"] is True


def test_ca_rotation_replaces_the_ca_and_refuses_the_old_one(
    any_cluster: LabCluster, tmp_path: Path
) -> None:
    lab = any_cluster  # the lab's processes and real sshd hosts alike
    lab.ok("up")
    lab.ok("put", "/k", "v")
    pki_dir = lab.state / "pki"
    old_ca = (pki_dir / "ca.crt").read_bytes()
    # --finish with no rotation under way is refused: it would have started one.
    kept = {p: p.read_bytes() for p in sorted(lab.state.rglob("*")) if p.is_file()
            and p.suffix in (".crt", ".key", ".json", ".pem")}
    refused = lab.dcsctl("certs", "rotate", "--ca", "--finish", "--yes")
    assert refused.code == 1, refused.err
    assert "error: no CA rotation in progress" in refused.err, refused.err
    assert "fix: start one with `dcsctl certs rotate --ca`" in refused.err, refused.err
    assert {p: p.read_bytes() for p in kept} == kept
    assert not (pki_dir / "ca-next.crt").exists()
    old_admin = tmp_path / "old-admin"
    shutil.copytree(pki_dir, old_admin)
    history = operation(lab, "certs-rotate-ca", tmp_path,
                        lambda _: lab.ok("certs", "rotate", "--ca"))
    # Each member restarts twice (trust both, then only the new CA): writes go on with the
    # other two, and the clients reconnect with the trust published now.
    assert history.acked_during >= MIN_ACKED_DURING
    assert history.linearizable, history.checker
    assert (pki_dir / "ca.crt").read_bytes() != old_ca
    assert not (pki_dir / "trust.crt").exists()
    assert lab.ok("get", "/k").out == "v\n"
    for member in lab.names():
        assert lab.member_tls(member, "ca").read_bytes() == (pki_dir / "ca.crt").read_bytes()
    context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
    context.check_hostname = False
    context.load_cert_chain(str(old_admin / "admin.crt"), str(old_admin / "admin.key"))
    connection = http.client.HTTPSConnection(lab.addresses()[0], 2379, context=context,
                                             timeout=5)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        connection.request("GET", "/health")
        connection.getresponse()


def test_nospace_alarm_is_cured_by_maintenance_without_data_loss(
        any_cluster: LabCluster) -> None:
    lab = any_cluster  # the lab's processes and real sshd hosts alike
    document = lab.document()
    document["etcd"] = {"quota_backend_bytes": 16 * 2**20}
    lab.spec_file.write_text(yaml.safe_dump(document))
    lab.ok("up")
    cluster = cluster_of(lab)
    kept = {f"/kept/{i}": f"value-{i}".encode() for i in range(50)}
    with cluster.admin_client() as client:
        for key, value in kept.items():
            client.put(key, value)
        blob = b"x" * 64 * 1024
        with pytest.raises(DcsctlError, match="space quota"):
            for _ in range(2000):  # bounded: 2000 x 64 KiB is 8x the quota
                client.put("/history/blob", blob)
    status = lab.dcsctl("status", "--json")
    assert status.code == 5
    assert any(a["alarm"] == "NOSPACE" for a in status.json()["alarms"])  # type: ignore[union-attr]

    result = lab.ok("maintenance")
    assert "disarmed alarms: NOSPACE" in result.out
    lab.ok("put", "/after", "writable again")
    with cluster.admin_client() as client:
        for key, value in kept.items():
            found = client.get(key)
            assert found is not None and found.value == value
    assert lab.ok("status", "--json").json()["healthy"] is True


def test_rolling_restart_under_writes(any_cluster: LabCluster, tmp_path: Path) -> None:
    lab = any_cluster  # the lab's processes and real sshd hosts alike
    lab.ok("up")
    pids = [m["pid"] for m in _members(lab)]
    history = operation(lab, "rolling-restart", tmp_path, lambda _: lab.ok("restart"))
    after = _members(lab)
    assert all(m["pid"] not in pids for m in after)
    assert all(m["healthy"] for m in after)
    # Leadership is handed over first and one member restarts at a time: never an outage.
    # A call in flight to a restarting member may end unanswered (counted, not bounded:
    # how many grows with a busy machine's slowness), but the other clients' writes go on.
    assert history.longest_gap_s is not None
    print(f"\nrolling restart: longest write gap {history.longest_gap_s:.2f} s, "
          f"unanswered {history.failures}")
    assert history.longest_gap_s < MAX_WRITE_GAP_S, history
    assert history.acked_during >= MIN_ACKED_DURING
    assert history.linearizable, history.checker


def test_maintenance_under_the_workload_stays_linearizable(lab: LabCluster,
                                                           tmp_path: Path) -> None:
    lab.ok("up")
    cluster = cluster_of(lab)
    with cluster.admin_client() as client:  # history to compact, space to defragment
        for index in range(300):
            client.put(f"/churn/{index % 10}", b"x" * 16 * 1024)
    history = operation(lab, "maintenance", tmp_path, lambda _: lab.ok("maintenance"))
    assert history.acked_during >= MIN_ACKED_DURING_QUICK
    assert history.linearizable, history.checker


OLD_ETCD = REPO / ".tools" / "etcd-3.5.16" / "bin"


def test_rolling_upgrade_from_the_guides_etcd_keeps_data(lab: LabCluster,
                                                         record_reads: RecordReads) -> None:
    document = lab.document()
    document["etcd"] = {"bin_dir": str(OLD_ETCD), "accept_risks": risks_of(Version(3, 5, 16))}
    lab.spec_file.write_text(yaml.safe_dump(document))
    lab.ok("up")
    lab.ok("put", "/k", "survives")
    assert {m["status"]["version"] for m in _members(lab)} == {"3.5.16"}  # type: ignore[index]
    newest = NEWEST["3.5"]
    new_bin = etcd_bin_dir(newest)
    record_reads.take()
    result = lab.ok("upgrade", "--to", str(newest), "--bin-dir", str(new_bin))
    assert "snapshot before the change" in result.out
    assert record_reads.take() == 1  # for the snapshot's manifest and every member's config
    members = _members(lab)
    assert {m["status"]["version"] for m in members} == {str(newest)}  # type: ignore[index]
    assert all(m["healthy"] for m in members)
    assert lab.ok("get", "/k").out == "survives\n"
    again = lab.ok("upgrade", "--to", str(newest), "--bin-dir", str(new_bin))
    assert "nothing (already there)" in again.out


def test_unsupported_upgrade_paths_are_refused(lab: LabCluster, tmp_path: Path) -> None:
    lab.ok("up")
    fake = tmp_path / "etcd-3.7"
    fake.mkdir()
    for tool in ("etcd", "etcdctl"):
        (fake / tool).write_text('#!/bin/sh\necho "etcd Version: 3.9.0"\n')
        (fake / tool).chmod(0o755)
    refused = lab.dcsctl("upgrade", "--to", "3.9.0", "--bin-dir", str(fake))
    assert refused.code == 1 and "skips a minor version" in refused.err
    down = lab.dcsctl("upgrade", "--to", "3.5.16", "--bin-dir", str(OLD_ETCD))
    assert down.code == 1 and "downgrade" in down.err
