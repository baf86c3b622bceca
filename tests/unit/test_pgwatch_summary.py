"""The testbed's Patroni watch reads demotions, PostgreSQL restarts and DCS gaps out of
its samples: each case a few samples and what a window over them must say."""

from __future__ import annotations

from typing import Any

import pytest

from tests.testbed.pgwatch import Window, summarise


def s(t: float, node: str, role: str, pg: str = "A", seen: float | None = None,
      scope: str = "demo") -> dict[str, Any]:
    return {"k": "s", "t": t, "scope": scope, "node": node, "role": role, "pg_start": pg,
            "seen": t - 2 if seen is None else seen}


def ack(t: float, scope: str = "demo") -> dict[str, Any]:
    return {"k": "ack", "t": t, "scope": scope, "id": int(t)}


CASES = [
    ("steady: nothing happens", [s(1, "a", "primary"), s(2, "a", "primary"), ack(2.5)],
     (0, 0, 0, 2.0, 0, 1)),
    ("a demotion and the replica's promotion",
     [s(1, "a", "primary"), s(1, "b", "replica"), s(3, "a", "replica", pg="B"),
      s(3, "b", "primary")], (1, 1, 1, 2.0, 0, 0)),
    ("unreachable is neither a demotion nor a restart",
     [s(1, "a", "primary"), {"k": "s", "t": 2, "scope": "demo", "node": "a",
                             "role": "unreachable"}, s(3, "a", "primary")],
     (0, 0, 0, 2.0, 1, 0)),
    ("a change from before the window counts in it",
     [s(0.5, "a", "primary"), s(1.5, "a", "replica")], (1, 0, 0, 2.0, 0, 0)),
    ("the oldest dcs_last_seen", [s(1, "a", "primary", seen=-20.0), s(2, "a", "primary")],
     (0, 0, 0, 21.0, 0, 0)),
    ("another scope and samples after the window are not this one's",
     [s(1, "a", "primary"), s(2, "a", "replica", scope="other"), s(9, "a", "replica"),
      ack(2, scope="other")], (0, 0, 0, 2.0, 0, 0)),
]


@pytest.mark.parametrize(("case", "records", "expected"), CASES, ids=[c[0] for c in CASES])
def test_a_window_counts_what_happened_to_its_scope(
        case: str, records: list[dict[str, Any]],
        expected: tuple[int, int, int, float, int, int]) -> None:
    window = summarise(records, "demo", 1.0, 5.0)
    assert isinstance(window, Window)
    assert (window.demotions, window.promotions, window.pg_restarts,
            window.longest_seen_age_s, window.unanswered, window.acked) == expected, case
