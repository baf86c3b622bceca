"""Which etcd version changes dcsctl allows, and what each release is known to break:
tables, as etcd's upgrade guides and security advisories state them."""

from __future__ import annotations

import pytest

from dcsctl.etcd.versions import (
    NEWEST,
    RECOMMENDED,
    Impact,
    Version,
    advisories,
    cross_scope,
    downgrade_problem,
    refusal,
    upgrade_problem,
    warnings,
)

V = Version.parse


@pytest.mark.parametrize(
    ("current", "target", "refusal_text", "steps"),
    [
        ("3.5.16", "3.5.30", None, None),  # patch upgrade
        ("3.5.30", "3.5.30", None, None),  # nothing to do
        ("3.5.32", "3.6.0", None, None),  # minor upgrade from the required patch release
        ("3.5.31", "3.6.16", "3.5.32 or later", "3.5.35 -> 3.6.16"),
        ("3.5.16", "3.6.16", "upgrade to 3.5.x first", "3.5.35 -> 3.6.16"),
        ("3.5.16", "3.7.3", "skips a minor version", "3.5.35 -> 3.6.16 -> 3.7.3"),
        ("3.5.35", "3.7.3", "skips a minor version", "3.6.16 -> 3.7.3"),
        ("3.6.11", "3.7.3", None, None),
        ("3.6.10", "3.7.3", "3.6.11 or later", "3.6.16 -> 3.7.3"),
        ("3.4.23", "3.5.30", None, None),
        ("3.5.30", "3.5.16", "downgrade", None),
        ("3.7.3", "3.6.16", "dcsctl downgrade", None),
        ("3.5.30", "4.0.0", "major version", None),
        ("3.7.1", "3.8.0", "no known-safe path", None),
    ],
)
def test_upgrade_paths(current: str, target: str, refusal_text: str | None,
                       steps: str | None) -> None:
    problem = upgrade_problem(V(current), V(target))
    if refusal_text is None:
        assert problem is None
        return
    assert problem is not None and refusal_text in str(problem)
    if steps is not None:
        assert " -> ".join(str(s) for s in problem.steps) == steps
        assert str(problem).endswith(steps)


@pytest.mark.parametrize(
    ("current", "line", "refusal_text"),
    [
        ("3.7.3", "3.6", None),
        ("3.6.16", "3.5", None),
        ("3.7.3", "3.5", "more than one minor"),
        ("3.5.35", "3.4", "no downgrade support"),
        ("3.6.16", "3.6", "not a downgrade"),
        ("3.6.16", "3.7", "not a downgrade"),
        ("3.7.3", "three.six", "not a release line"),
    ],
)
def test_downgrade_paths(current: str, line: str, refusal_text: str | None) -> None:
    problem = downgrade_problem(V(current), line)
    if refusal_text is None:
        assert problem is None
    else:
        assert problem is not None and refusal_text in str(problem)


WATCH_LEAK = "CVE-2026-73499"


@pytest.mark.parametrize(
    ("version", "leaks"),
    [
        ("3.4.23", True), ("3.5.16", True), ("3.5.30", True), ("3.5.32", True),
        ("3.5.33", False), ("3.5.35", False),
        ("3.6.0", True), ("3.6.13", True), ("3.6.14", False), ("3.6.16", False),
        ("3.7.0", True), ("3.7.1", False), ("3.7.3", False),
    ],
)
def test_the_open_ended_watch_leak_by_version(version: str, leaks: bool) -> None:
    found = [a.ident for a in cross_scope(V(version))]
    assert (WATCH_LEAK in found) is leaks


def test_newest_patches_have_no_cross_scope_advisory() -> None:
    for version in NEWEST.values():
        assert cross_scope(version) == []
        assert refusal(version) is None
    assert max(NEWEST.values()) == RECOMMENDED


def test_each_advisory_names_its_fixes_and_what_it_breaks() -> None:
    found = advisories(V("3.5.16"))
    assert {a.impact for a in found} == {Impact.CROSS_SCOPE, Impact.WARN}
    assert Impact.WARN in {a.impact for a in advisories(V("3.5.2"))}
    leak = next(a for a in found if a.ident == WATCH_LEAK)
    assert leak.fixed_text() == "3.5.33, 3.6.14, 3.7.1"
    assert "GHSA-xg4h-6gfc-h4m8" in leak.describe()
    assert any("upgrade to 3.5.35" in line for line in warnings(V("3.5.16")))


def test_too_old_a_version_is_refused() -> None:
    refused = refusal(V("3.3.27"))
    assert refused is not None and refused.impact is Impact.UNUSABLE
