"""Anomalies injected into a real recorded history: the controls that show histcheck can
say no. Each returns the history with one record added that no linearizable store could
have produced, or None when the history offers no place for it. Used by
tests/faults/test_history_controls.py and scripts/reliability_report.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Record = dict[str, Any]
History = list[Record]
GAP = 2  # ns after the chosen write: the injected call sits right behind it


def read_history(path: Path) -> History:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_history(path: Path, history: History) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in history))
    return path


def _quiet_after(history: History, record: Record) -> bool:
    """No other write on the record's key may take effect between its call and
    return + GAP: every other write there returned before it was called, or was called
    after return + GAP (an unknown outcome counts as never returning)."""
    for other in history:
        if other is record or other.get("key") != record["key"] or other["op"] == "get" \
                or other["ok"] is False:
            continue
        returned = other["return"] if other["return"] is not None else 1 << 62
        if not (returned < record["call"] or other["call"] > record["return"] + GAP):
            return False
    return True


def _acked(history: History, op: str) -> Iterator[Record]:
    for r in history:
        if r["op"] == op and r["ok"] is True and (op == "put" or r.get("succeeded")):
            yield r


def _lease_floors(history: History) -> dict[int, int]:
    """lease -> the time before which it cannot have expired (as histcheck computes it)."""
    floors: dict[int, int] = {}
    for r in history:
        if r["op"] in {"grant", "keepalive"} and r["ok"] is True and r["ttl"] > 0:
            floors[r["lease"]] = max(floors.get(r["lease"], 0), r["call"] + r["ttl"] * 10**9)
    return floors


def stale_read(history: History) -> History | None:
    """A read, after a second acknowledged put, that returns the first one's value (the
    first returned before the second was called: it cannot come after it)."""
    puts = list(_acked(history, "put"))
    for second in puts:
        firsts = [p for p in puts if p["key"] == second["key"] and p["return"] < second["call"]]
        if firsts and _quiet_after(history, second):
            return [*history, {"client": 99, "op": "get", "key": second["key"],
                               "call": second["return"] + 1, "return": second["return"] + GAP,
                               "ok": True, "result": firsts[-1]["value"]}]
    return None


def lost_write(history: History) -> History | None:
    """A read right after an acknowledged put, before anyone else wrote there, that finds
    no key: the acknowledged write is gone."""
    put = next((p for p in _acked(history, "put") if _quiet_after(history, p)), None)
    if put is None:
        return None
    return [*history, {"client": 99, "op": "get", "key": put["key"], "call": put["return"] + 1,
                       "return": put["return"] + GAP, "ok": True, "result": None}]


def double_create(history: History) -> History | None:
    """A second client wins the leader key right after the first, while the first one's
    lease surely lives: two leaders."""
    floors = _lease_floors(history)
    create = next((c for c in _acked(history, "create") if _quiet_after(history, c)
                   and floors.get(c["lease"], 0) > c["return"] + GAP), None)
    if create is None:
        return None
    return [*history, {"client": 99, "op": "create", "key": create["key"], "value": "intruder",
                       "lease": 7, "call": create["return"] + 1,
                       "return": create["return"] + GAP, "ok": True, "succeeded": True}]


def double_cas(history: History) -> History | None:
    """A second client wins the same compare-and-swap (same expected value) as a real
    renewal, at the same time."""
    cas = next((c for c in _acked(history, "cas") if _quiet_after(history, c)), None)
    if cas is None:
        return None
    return [*history, {"client": 99, "op": "cas", "key": cas["key"], "prev": cas["prev"],
                       "value": "intruder", "call": cas["call"], "return": cas["return"],
                       "ok": True, "succeeded": True}]


ANOMALIES: dict[str, Callable[[History], History | None]] = {
    "a stale read": stale_read,
    "an acknowledged write lost": lost_write,
    "two clients both winning the leader key (create)": double_create,
    "two clients both winning the same compare-and-swap": double_cas,
}
