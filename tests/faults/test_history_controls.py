"""histcheck's controls: a real recorded history it accepts, and the same history with one
anomaly injected (a stale read, an acknowledged write lost, two clients both winning the
leader key) that it must refuse. A checker that never says no proves nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import anomalies
from tests.support.anomalies import History, read_history, write_history
from tests.support.history import SLOW, Workload, assert_empty, check_history, lab_connect
from tests.support.lab import LabCluster, lab_clusters


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[History, Path]]:
    """A real history: 4 clients for a few seconds against a healthy 3-member cluster."""
    workdir = tmp_path_factory.mktemp("controls")
    with lab_clusters(workdir) as make:
        lab: LabCluster = make()
        lab.ok("up")
        connect = lab_connect(lab)
        assert_empty(connect, "/controls/")
        path = workdir / "real.jsonl"
        with Workload(connect, "/controls/", path, max_seconds=180) as workload:
            workload.wait_acked(600, timeout=150)
        assert workload.summary().operations >= 1000
        assert set(workload.failures) <= SLOW, workload.failures  # a healthy cluster
    yield read_history(path), workdir


def test_a_real_history_is_linearizable(recorded: tuple[History, Path]) -> None:
    history, workdir = recorded
    ops = {r["op"] for r in history}
    assert {"get", "put", "delete", "grant", "keepalive", "create", "cas"} <= ops
    assert len({r["client"] for r in history}) >= 4
    checked = check_history(write_history(workdir / "real-copy.jsonl", history))
    assert checked.linearizable, checked.output


def test_a_stale_read_is_not_linearizable(recorded: tuple[History, Path]) -> None:
    history, workdir = recorded
    injected = anomalies.stale_read(history)
    assert injected is not None, "no two sequential puts on one key in the recorded history"
    checked = check_history(write_history(workdir / "stale-read.jsonl", injected))
    assert checked.code == 1, checked.output
    assert f'-> "{injected[-1]["result"]}"' in checked.output  # the window names the read
    assert (workdir / "stale-read.html").stat().st_size > 0


def test_a_lost_acknowledged_write_is_not_linearizable(recorded: tuple[History, Path]) -> None:
    history, workdir = recorded
    injected = anomalies.lost_write(history)
    assert injected is not None, "no put without a concurrent write in the recorded history"
    checked = check_history(write_history(workdir / "lost-write.jsonl", injected))
    assert checked.code == 1, checked.output
    key = injected[-1]["key"]
    assert f'get("{key}") -> (no key)' in checked.output and f'put("{key}"' in checked.output


def test_two_clients_winning_the_leader_key_is_not_linearizable(
        recorded: tuple[History, Path]) -> None:
    history, workdir = recorded
    injected = anomalies.double_create(history)
    assert injected is not None, "no uncontended leader-key win in the recorded history"
    checked = check_history(write_history(workdir / "double-create.jsonl", injected))
    assert checked.code == 1, checked.output
    assert "intruder" in checked.output


def test_two_clients_winning_the_same_cas_is_not_linearizable(
        recorded: tuple[History, Path]) -> None:
    history, workdir = recorded
    injected = anomalies.double_cas(history)
    assert injected is not None, "no uncontended leader-key renewal in the recorded history"
    checked = check_history(write_history(workdir / "double-cas.jsonl", injected))
    assert checked.code == 1, checked.output
    assert "intruder" in checked.output


def test_a_malformed_history_is_bad_input(recorded: tuple[History, Path]) -> None:
    history, workdir = recorded
    broken = dict(history[0])
    del broken["call"]
    checked = check_history(write_history(workdir / "malformed.jsonl", [*history[:5], broken]))
    assert checked.code == 2 and "error:" in checked.output and "line 6" in checked.output
