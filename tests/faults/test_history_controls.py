"""histcheck's controls: a real recorded history it accepts, and the same history with one
anomaly injected (a stale read, an acknowledged write lost, two clients both winning the
leader key) that it must refuse. A checker that never says no proves nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LabCluster, lab_clusters
from tests.support.history import Workload, assert_empty, check_history, lab_connect

History = list[dict[str, Any]]


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
        with Workload(connect, "/controls/", path, max_seconds=60) as workload:
            workload.wait_acked(600, timeout=60)
        summary = workload.summary()
        assert summary.operations >= 1000 and summary.unknown == 0
    history = [json.loads(line) for line in path.read_text().splitlines()]
    yield history, workdir


def _write(workdir: Path, name: str, history: History) -> Path:
    path = workdir / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in history))
    return path


def _writes_on(history: History, key: str) -> History:
    return [r for r in history if r.get("key") == key and r["op"] != "get"]


def _quiet_after(history: History, record: dict[str, Any], gap: int) -> bool:
    """No other write on the record's key may take effect between its call and
    return + gap: every other write there returned before it was called, or was called
    after return + gap."""
    for other in _writes_on(history, record["key"]):
        if other is record or other["ok"] is False:
            continue
        returned = other["return"] if other["return"] is not None else 1 << 62
        if not (returned < record["call"] or other["call"] > record["return"] + gap):
            return False
    return True


def _acked(history: History, op: str) -> Iterator[dict[str, Any]]:
    for r in history:
        if r["op"] == op and r["ok"] is True and (op == "put" or r.get("succeeded")):
            yield r


def test_a_real_history_is_linearizable(recorded: tuple[History, Path]) -> None:
    history, workdir = recorded
    ops = {r["op"] for r in history}
    assert {"get", "put", "delete", "grant", "keepalive", "create", "cas"} <= ops
    assert len({r["client"] for r in history}) >= 4
    checked = check_history(_write(workdir, "real-copy", history))
    assert checked.linearizable, checked.output


def test_a_stale_read_is_not_linearizable(recorded: tuple[History, Path]) -> None:
    history, workdir = recorded
    # Two acknowledged puts on one key, the first done before the second began, nothing
    # else written there meanwhile; a read after the second that returns the first.
    puts = list(_acked(history, "put"))
    for second in puts:
        firsts = [p for p in puts if p["key"] == second["key"] and p["return"] < second["call"]]
        if firsts and _quiet_after(history, second, 2):
            first = firsts[-1]
            break
    else:
        pytest.fail("no two sequential puts on one key in the recorded history")
    stale = {"client": 99, "op": "get", "key": second["key"], "call": second["return"] + 1,
             "return": second["return"] + 2, "ok": True, "result": first["value"]}
    checked = check_history(_write(workdir, "stale-read", [*history, stale]))
    assert checked.code == 1, checked.output
    assert f'-> "{first["value"]}"' in checked.output  # the window names the stale read
    assert (workdir / "stale-read.html").stat().st_size > 0


def test_a_lost_acknowledged_write_is_not_linearizable(recorded: tuple[History, Path]) -> None:
    history, workdir = recorded
    put = next((p for p in _acked(history, "put") if _quiet_after(history, p, 2)), None)
    assert put is not None, "no put without a concurrent write in the recorded history"
    # A read right after the acknowledgement, before anyone else wrote: the key is empty.
    lost = {"client": 99, "op": "get", "key": put["key"], "call": put["return"] + 1,
            "return": put["return"] + 2, "ok": True, "result": None}
    checked = check_history(_write(workdir, "lost-write", [*history, lost]))
    assert checked.code == 1, checked.output
    assert f'put("{put["key"]}", "{put["value"]}")' in checked.output


def test_two_clients_winning_the_leader_key_is_not_linearizable(
        recorded: tuple[History, Path]) -> None:
    history, workdir = recorded
    floors: dict[int, int] = {}  # lease -> the time before which it cannot expire
    for r in history:
        if r["op"] in {"grant", "keepalive"} and r["ok"] is True and r["ttl"] > 0:
            floors[r["lease"]] = max(floors.get(r["lease"], 0), r["call"] + r["ttl"] * 10**9)
    create = next((c for c in _acked(history, "create") if _quiet_after(history, c, 2)
                   and floors.get(c["lease"], 0) > c["return"] + 2), None)
    assert create is not None, "no uncontended leader-key win in the recorded history"
    intruder = {"client": 99, "op": "create", "key": create["key"], "value": "intruder",
                "lease": 7, "call": create["return"] + 1, "return": create["return"] + 2,
                "ok": True, "succeeded": True}
    checked = check_history(_write(workdir, "double-create", [*history, intruder]))
    assert checked.code == 1, checked.output
    assert "intruder" in checked.output


def test_two_clients_winning_the_same_cas_is_not_linearizable(
        recorded: tuple[History, Path]) -> None:
    history, workdir = recorded
    cas = next((c for c in _acked(history, "cas") if _quiet_after(history, c, 2)), None)
    assert cas is not None, "no uncontended leader-key renewal in the recorded history"
    twin = {"client": 99, "op": "cas", "key": cas["key"], "prev": cas["prev"],
            "value": "intruder", "call": cas["call"], "return": cas["return"], "ok": True,
            "succeeded": True}
    checked = check_history(_write(workdir, "double-cas", [*history, twin]))
    assert checked.code == 1, checked.output
    assert "intruder" in checked.output


def test_a_malformed_history_is_bad_input(recorded: tuple[History, Path]) -> None:
    history, workdir = recorded
    broken = dict(history[0])
    del broken["call"]
    checked = check_history(_write(workdir, "malformed", [*history[:5], broken]))
    assert checked.code == 2 and "error:" in checked.output and "line 6" in checked.output
