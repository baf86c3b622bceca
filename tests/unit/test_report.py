"""The renderers: each result type as a table (or lines) for people and as JSON for
scripts, printed the one way (report.print_output)."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from dcsctl import perf, report
from dcsctl.etcd.model import KeyValue
from dcsctl.ops.backup import Backup, BackupListing, BackupResult
from dcsctl.ops.backups import Stored, Taken
from dcsctl.ops.checks import CheckPlan, DatascaleResult, MemberMemory, PerfResult
from dcsctl.ops.expiry import CertificateCheck
from dcsctl.ops.maintenance import MaintenanceResult
from dcsctl.ops.offsite import StoreBackupResult, StoredBackup, StoreListing
from dcsctl.ops.patroni import Scope, ScopeView
from dcsctl.ops.patroni_status import NodeStatus
from dcsctl.ops.rotation import CertificateRow, Verdict
from dcsctl.ops.upgrade import UpgradeResult
from dcsctl.report import backups, changes, checks, cluster, patroni
from dcsctl.snapshots import Manifest
from dcsctl.targets.protocol import Check
from dcsctl.targets.protocol import Verdict as CheckVerdict


def printed(output: report.Output, *, json_output: bool = False) -> tuple[str, str]:
    """(stdout, stderr) of a command that prints `output`."""
    out, err = io.StringIO(), io.StringIO()
    report.print_output(output, Console(file=out, soft_wrap=True, width=200),
                        Console(file=err, soft_wrap=True), json_output=json_output)
    return out.getvalue(), err.getvalue()


def as_json(output: report.Output) -> object:
    out, err = printed(output, json_output=True)
    assert err == ""  # notes are for people: a script's stderr stays quiet
    return json.loads(out)


def table_rows(text: str) -> list[list[str]]:
    """The cells of an etcdctl-like table, row by row (header first)."""
    return [[cell.strip() for cell in line.strip("│").split("│")]
            for line in text.splitlines() if line.startswith("│")]


MANIFEST = Manifest(cluster="dcs", cluster_id="8e9e05c52164694d",
                    taken_at="2026-12-05T21:00:00+00:00", member="dcs-01",
                    endpoint="https://127.0.0.11:2379", etcd_version="3.5.30",
                    revision=42, key_count=None, db_size=20480, sha256="ab" * 32,
                    spec_digest="cd" * 32, users=("root",), roles=("root",))


def test_text_is_printed_as_written_and_json_alone_when_asked() -> None:
    output = report.Output(("a [bold]literal[/bold] line :warning:",
                            report.Verbatim("tab\tkept\n")), {"b": [1, 2]}, ("a note",))
    out, err = printed(output)
    # No markup, no emoji codes, no tab expansion: what the result says, as it says it.
    assert out == "a [bold]literal[/bold] line :warning:\ntab\tkept\n"
    assert err == "a note\n"
    assert as_json(output) == {"b": [1, 2]}


def test_a_listing_shows_the_same_rows_as_a_table_and_as_records() -> None:
    listing: report.Listing[tuple[str, int]] = report.Listing(
        (("NAME", lambda r: r[0]), ("SIZE", lambda r: report.human_bytes(r[1]))),
        lambda r: {"name": r[0], "bytes": r[1]}, title="things")
    rows = [("a", 1500), ("b", 7)]
    out, _ = printed(report.Output((listing.table(rows),), listing.records(rows)))
    assert out.splitlines()[0] == "things"
    assert table_rows(out) == [["NAME", "SIZE"], ["a", "1.5 kB"], ["b", "7 B"]]
    assert "┌" in out  # the one table look: etcdctl's boxed -w table
    assert listing.records(rows) == [{"name": "a", "bytes": 1500}, {"name": "b", "bytes": 7}]


def test_a_backup_in_a_directory_says_where_what_and_what_was_pruned() -> None:
    taken = Taken(BackupResult(Backup(Path("/b/dcs-1.db"), MANIFEST), 1.23456,
                               (Path("/b/dcs-0.db"),)), None, ())
    out, err = printed(backups.backup_output(taken))
    assert out.splitlines() == [
        "Snapshot saved at /b/dcs-1.db",
        f"  from dcs-01, revision 42, ? keys, 20.5 kB in 1.23 s, sha256 {'ab' * 8}…",
        "removed old backup /b/dcs-0.db"]
    assert err == ""
    assert as_json(backups.backup_output(taken)) == {
        "path": "/b/dcs-1.db", "seconds": 1.235, "pruned": ["/b/dcs-0.db"],
        "manifest": json.loads(json.dumps(MANIFEST.__dict__))}


def test_a_stored_backup_names_its_url_and_the_uploads_it_aborted() -> None:
    stored = StoredBackup("dcs-1.db", MANIFEST, 30000)
    result = StoreBackupResult(stored, 2.0, 0.5, ("dcs-0.db",), 2)
    output = backups.backup_output(Taken(None, Stored(result, "https://s3/b/dcs/x"), ()))
    out, err = printed(output)
    assert out.splitlines()[0] == "Snapshot sealed and stored at https://s3/b/dcs/x"
    assert "(upload 0.50 s)" in out
    assert out.splitlines()[-1] == "removed old backup dcs-0.db from the store"
    assert "aborted 2 unfinished upload(s)" in err
    document = as_json(output)
    assert isinstance(document, dict)
    assert (document["object"], document["url"], document["aborted_uploads"]) == (
        stored.object, "https://s3/b/dcs/x", 2)


def test_backup_lists_show_ours_and_count_the_others_on_stderr() -> None:
    local = BackupListing((Backup(Path("/b/dcs-1.db"), MANIFEST),), (Path("/b/x.db"),))
    out, err = printed(backups.listing_output(local, "dcs"))
    assert table_rows(out) == [
        ["FILE", "TAKEN", "MEMBER", "REVISION", "KEYS", "SIZE", "ETCD"],
        ["dcs-1.db", MANIFEST.taken_at, "dcs-01", "42", "?", "20.5 kB", "3.5.30"]]
    assert err.startswith("1 other snapshot(s) in that directory")
    assert as_json(backups.listing_output(local, "dcs")) == [
        {"path": "/b/dcs-1.db", **json.loads(json.dumps(MANIFEST.__dict__))}]
    damaged = StoredBackup("dcs-0.db", MANIFEST, 1)
    store = StoreListing((StoredBackup("dcs-1.db", MANIFEST, 30000),), (damaged,), ())
    out, err = printed(backups.listing_output(store, "dcs"))
    assert table_rows(out)[0][0] == "BACKUP" and table_rows(out)[1][0] == "dcs-1.db"
    assert err.startswith("damaged: dcs-0.db")
    records = as_json(backups.listing_output(store, "dcs"))
    assert isinstance(records, list) and records[0]["object"] == store.ours[0].object


def test_certificates_show_expiry_as_a_date_and_as_a_timestamp() -> None:
    expires = dt.datetime(2027, 1, 2, 3, 4, tzinfo=dt.UTC)
    checked = CertificateCheck((CertificateRow("dcs-01", "member", Path("/p/dcs-01.crt"),
                                               "CN=dcs-01", expires, 3, Verdict.EXPIRING),), ())
    out, _ = printed(changes.certificates_output(checked))
    assert table_rows(out) == [
        ["HOLDER", "ROLE", "SUBJECT", "EXPIRES", "DAYS LEFT", "VERDICT"],
        ["dcs-01", "member", "CN=dcs-01", "2027-01-02", "3", "expiring"]]
    assert as_json(changes.certificates_output(checked)) == [
        {"holder": "dcs-01", "role": "member", "path": "/p/dcs-01.crt", "subject": "CN=dcs-01",
         "not_after": "2027-01-02T03:04:00+00:00", "days_left": 3, "verdict": "expiring"}]
    assert not checked.all_ok


def test_patroni_scopes_nodes_and_doctor_as_tables_and_json() -> None:
    views = [ScopeView(Scope("demo", "/service/"), "pg1", ("pg1", "pg2"), registered=True,
                       user_in_etcd=False)]
    out, _ = printed(patroni.scopes_output(views))
    assert table_rows(out)[1] == ["demo", "/service/demo/", "(missing: patroni-demo)", "pg1",
                                  "pg1, pg2"]
    assert as_json(patroni.scopes_output(views)) == [
        {"scope": "demo", "namespace": "/service/", "prefix": "/service/demo/", "user": None,
         "leader": "pg1", "members": ["pg1", "pg2"]}]
    nodes = [NodeStatus("demo", "pg1", "10.0.0.1", False, "refused", None, None, None, None,
                        "01", "02", None)]
    out, _ = printed(patroni.status_output(nodes))
    assert table_rows(out)[1] == ["demo", "pg1", "no (refused)", "-", "-", "-", "01",
                                  "02 (drift)", "-"]
    document = as_json(patroni.status_output(nodes))
    assert isinstance(document, dict)
    assert document["nodes"][0]["drift"] is True and document["nodes"][0]["problem"] == "refused"
    doctor = [Check("pg1", "version", CheckVerdict.FAIL, "4.0.0", fix="upgrade Patroni")]
    out, _ = printed(patroni.doctor_output("demo", doctor))
    assert table_rows(out)[1] == ["pg1", "version", "FAIL", "4.0.0"]
    assert as_json(patroni.doctor_output("demo", doctor)) == {"scope": "demo", "checks": [
        {"node": "pg1", "check": "version", "verdict": "fail", "detail": "4.0.0",
         "fix": "upgrade Patroni"}]}


STATS = perf.LatencyStats(count=9000, errors=0, seconds=60.0, rps=150.0, fastest=0.001,
                          slowest=0.02, mean=0.0031234567, stddev=0.001, p50=0.003,
                          p90=0.005, p99=0.0123)
PLAN = CheckPlan("perf", "s", perf.SpaceEstimate(9000, 1280, 20480, 20480, 2 ** 31), ())


def test_perf_prints_percentiles_and_the_clean_up_before_etcdctls_verdict() -> None:
    result = PerfResult(perf.PERF_LOADS["s"], STATS, perf.Verdict(True, ("PASS: Throughput is "
                        "150 writes/s", "PASS")), (150, 150), (), {}, 20480, 24576, PLAN)
    out, _ = printed(checks.perf_output(result, "/etcdctl-check-perf/"))
    lines = out.splitlines()
    assert lines[0] == "PASS: Throughput is 150 writes/s"
    assert lines[1].startswith("Latency: p50 3.00 ms, p90 5.00 ms, p99 12.30 ms")
    assert lines[2].startswith("Cleaned up: keys under /etcdctl-check-perf/ deleted")
    assert lines[-1] == "PASS"
    document = as_json(checks.perf_output(result, "/etcdctl-check-perf/"))
    assert isinstance(document, dict)
    assert document["passed"] is True and document["stats"]["mean"] == 0.003123
    assert document["nospace"] is None and document["estimate"]["quota"] == 2 ** 31


def test_datascale_prints_each_members_memory_growth() -> None:
    result = DatascaleResult(perf.DATASCALE_LOADS["s"], STATS,
                             (MemberMemory("dcs-01", 2 ** 20, 3 * 2 ** 20),), 1, 2, False, PLAN)
    out, _ = printed(checks.datascale_output(result))
    assert "FAIL: dcs-01: approximate memory used 2.00 MB" in out.splitlines()
    document = as_json(checks.datascale_output(result))
    assert isinstance(document, dict)
    assert document["memory"] == [{"member": "dcs-01", "before": 2 ** 20,
                                   "after": 3 * 2 ** 20, "growth": 2 * 2 ** 20}]


def test_a_keys_value_is_printed_as_it_is_or_as_its_record() -> None:
    found = KeyValue("/k", b"line one\n\tindented", 5, 7, 2)
    out, _ = printed(cluster.get_output(found))
    assert out == "line one\n\tindented\n"
    assert as_json(cluster.get_output(found)) == {
        "key": "/k", "value": "line one\n\tindented", "create_revision": 5,
        "mod_revision": 7, "version": 2}


@pytest.mark.parametrize(("result", "lines"), [
    (MaintenanceResult(9, {"dcs-01": 2_000_000}, {"dcs-01": 1_000_000}, ("NOSPACE",)),
     ["compacted to revision 9", "dcs-01: 2 MB -> 1 MB", "disarmed alarms: NOSPACE"]),
    (MaintenanceResult(9, {"dcs-01": 2_000_000}, {}, ()),
     ["compacted to revision 9", "dcs-01: 2 MB -> 2 MB"]),
])
def test_maintenance_says_what_each_member_shrank_to(result: MaintenanceResult,
                                                     lines: list[str]) -> None:
    assert printed(changes.maintenance_output(result))[0].splitlines() == lines


def test_a_version_change_names_the_snapshot_and_the_members_rolled() -> None:
    result = UpgradeResult("3.5.30", "3.6.16", ("dcs-01", "dcs-02"), Path("/b/pre.db"), "3.6.0")
    assert printed(changes.version_change_output(result, "upgraded"))[0].splitlines() == [
        "snapshot before the change: /b/pre.db",
        "etcd 3.5.30 -> 3.6.16: upgraded dcs-01, dcs-02; cluster version 3.6.0"]
    nothing = UpgradeResult("3.6.16", "3.6.16", (), None)
    assert printed(changes.version_change_output(nothing, "upgraded"))[0] == (
        "etcd 3.6.16 -> 3.6.16: upgraded nothing (already there)\n")


def test_status_shows_problems_after_the_tables_and_ends_with_the_verdict() -> None:
    from dcsctl.etcd.model import EndpointHealth, EndpointStatus, MemberInfo
    from dcsctl.ops.status import ClusterView, MemberView

    up = MemberView("dcs-01", "https://127.0.0.11:2379", 4242,
                    MemberInfo(0xA, "dcs-01", ("https://127.0.0.11:2380",),
                               ("https://127.0.0.11:2379",), False),
                    EndpointStatus("https://127.0.0.11:2379", 0xA, "3.5.30", 20480, 16384, 0xA,
                                   2, 9, 9, False, ()),
                    EndpointHealth("https://127.0.0.11:2379", True, 0.0021, ""), "")
    down = MemberView("dcs-02", "https://127.0.0.12:2379", None, None, None,
                      EndpointHealth("https://127.0.0.12:2379", False, 0.0, "refused"), "refused")
    view = ClusterView("dcs", "8e9e05c52164694d", (up, down), (), 2 ** 31,
                       ("dcs-02 is unreachable",), auth_enabled=True)
    out, _ = printed(cluster.status_output(view))
    lines = out.splitlines()
    assert lines[0] == "cluster dcs (8e9e05c52164694d)"
    assert ["a", "started", "dcs-01", "https://127.0.0.11:2380", "https://127.0.0.11:2379",
            "false", "4242"] in table_rows(out)
    assert lines[-2:] == ["problem: dcs-02 is unreachable",
                          "UNHEALTHY: 1/2 members healthy, leader dcs-01, auth on"]
    document = as_json(cluster.status_output(view))
    assert isinstance(document, dict)
    assert (document["healthy"], document["leader"]) == (False, "dcs-01")
    assert [m["error"] for m in document["members"]] == ["", "refused"]
