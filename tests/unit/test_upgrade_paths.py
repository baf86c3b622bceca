"""Which etcd upgrades dcsctl allows: a table, as etcd's upgrade guides state it."""

from __future__ import annotations

import pytest

from dcsctl.etcd.versions import Version, upgrade_problem

V = Version.parse


@pytest.mark.parametrize(
    ("current", "target", "refusal"),
    [
        ("3.5.16", "3.5.30", None),  # patch upgrade
        ("3.5.30", "3.5.30", None),  # nothing to do
        ("3.5.26", "3.6.0", None),  # minor upgrade from the required patch release
        ("3.5.25", "3.6.0", "3.5.26 or later"),
        ("3.4.23", "3.5.30", None),
        ("3.4.23", "3.6.0", "skips a minor version"),
        ("3.5.30", "3.5.16", "downgrade"),
        ("3.5.30", "4.0.0", "major version"),
        ("3.6.1", "3.7.0", "no known-safe path"),
    ],
)
def test_upgrade_paths(current: str, target: str, refusal: str | None) -> None:
    problem = upgrade_problem(V(current), V(target))
    if refusal is None:
        assert problem is None
    else:
        assert problem is not None and refusal in problem
