"""check perf / check datascale on a real cluster: verdicts, guard, cleanup, memory, plot."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from dcsctl.ops.context import Context
from dcsctl.spec import parse
from tests.conftest import REPO, LabCluster
from tests.patroni.harness import wait_for


def _db_sizes(lab: LabCluster) -> list[int]:
    members = lab.ok("status", "--json").json()["members"]
    assert isinstance(members, list)
    return [m["status"]["db_size"] for m in members]


def _keys_under(lab: LabCluster, prefix: str) -> int:
    cluster = Context(lab.environ).cluster(parse(lab.spec_file.read_text()))
    with cluster.admin_client() as client:
        return len(client.get_prefix(prefix, limit=0))


def test_short_perf_run_passes_cleans_up_and_plots(running_lab: LabCluster,
                                                   tmp_path: Path) -> None:
    plot = tmp_path / "perf.png"
    before = max(_db_sizes(running_lab))
    result = running_lab.ok("check", "perf", "--duration", "3", "--json", "--plot", str(plot))
    data = result.json()
    assert set(data) >= {"load", "passed", "verdict", "stats", "throughput_per_second",
                         "db_size_before", "db_size_after"}
    stats = data["stats"]
    assert isinstance(stats, dict)
    assert stats["count"] >= 400 and stats["errors"] == 0  # 150/s for 3 s
    assert stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["slowest"]
    assert data["verdict"][-1] in {"PASS", "FAIL"}  # type: ignore[index]
    assert _keys_under(running_lab, "/dcsctl-check-perf/") == 0
    assert max(_db_sizes(running_lab)) < before + 2_000_000  # history compacted + defragged
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_perf_refuses_a_prefix_that_holds_keys(running_lab: LabCluster) -> None:
    running_lab.ok("put", "/mine/precious", "keep me")
    refused = running_lab.dcsctl("check", "perf", "--prefix", "/mine/", "--duration", "1")
    assert refused.code == 1 and "already holds keys" in refused.err
    assert running_lab.ok("get", "/mine/precious").out == "keep me\n"


def test_interrupted_perf_run_still_cleans_up(running_lab: LabCluster) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "dcsctl", "check", "perf", "--duration", "30",
         "-f", str(running_lab.spec_file)],
        env=running_lab.environ, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    wait_for(lambda: _keys_under(running_lab, "/dcsctl-check-perf/") > 50, 30,
             "no load written")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert _keys_under(running_lab, "/dcsctl-check-perf/") == 0


def test_datascale_reads_memory_of_every_member(running_lab: LabCluster) -> None:
    data = running_lab.ok("check", "datascale", "--json").json()
    memory = data["memory"]
    assert isinstance(memory, list) and len(memory) == 3
    assert {m["member"] for m in memory} == {f"{running_lab.name}-{i}" for i in range(3)}
    assert all(m["before"] > 0 and m["after"] > 0 for m in memory)
    assert data["stats"]["count"] == 10_000  # type: ignore[index]
    assert _keys_under(running_lab, "/dcsctl-check-datascale/") == 0


def test_datascale_refuses_a_load_beyond_the_quota(running_lab: LabCluster) -> None:
    refused = running_lab.dcsctl("check", "datascale", "--load", "xl")
    assert refused.code == 1 and "space quota" in refused.err
