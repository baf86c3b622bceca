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
    deploy_refusal,
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
        ("3.5.31", "3.6.17", "3.5.32 or later", "3.5.36 -> 3.6.17"),
        ("3.5.16", "3.6.17", "upgrade to 3.5.x first", "3.5.36 -> 3.6.17"),
        ("3.5.16", "3.7.4", "skips a minor version", "3.5.36 -> 3.6.17 -> 3.7.4"),
        ("3.5.36", "3.7.4", "skips a minor version", "3.6.17 -> 3.7.4"),
        ("3.6.11", "3.7.3", None, None),
        ("3.6.10", "3.7.4", "3.6.11 or later", "3.6.17 -> 3.7.4"),
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
    assert {a.impact for a in found} == {Impact.AUTH_BYPASS, Impact.CROSS_SCOPE,
                                         Impact.CRL_BYPASS, Impact.WARN}
    assert Impact.WARN in {a.impact for a in advisories(V("3.5.2"))}
    leak = next(a for a in found if a.ident == WATCH_LEAK)
    assert leak.fixed_text() == "3.5.33, 3.6.14, 3.7.1"
    assert "GHSA-xg4h-6gfc-h4m8" in leak.describe()
    assert any("upgrade to 3.5.36" in line for line in warnings(V("3.5.16")))


def test_too_old_a_version_is_refused() -> None:
    refused = refusal(V("3.3.27"))
    assert refused is not None and refused.impact is Impact.UNUSABLE


@pytest.mark.parametrize(
    ("version", "refused"),
    [
        # Debian trixie's etcd: auth bypass, cross-scope reads, CRL bypass
        ("3.5.16", ["CVE-2026-33413", "CVE-2026-33343", "CVE-2026-44283", "CVE-2026-59818",
                    "CVE-2026-73499"]),
        ("3.4.23", ["etcd-3.4-eol"]),  # Debian bookworm's: an unsupported line first of all
        ("3.5.32", ["CVE-2026-73499"]),
        ("3.5.33", []),  # CVE-2026-73500 (handshake pile-up) is availability: a warning
        ("3.6.13", ["CVE-2026-73499"]),
        ("3.7.0", ["CVE-2026-73499"]),
        ("3.5.36", []), ("3.6.17", []), ("3.7.4", []),
    ],
)
def test_versions_that_break_the_security_model_are_refused_by_name(
        version: str, refused: list[str]) -> None:
    problem = deploy_refusal({V(version): ["dcs-00", "dcs-01"]}, accepted=[])
    if not refused:
        assert problem is None
        return
    assert problem is not None
    named = problem.message.split(": ")[-1].split(", ")
    assert set(refused) <= set(named), named
    assert problem.exit_code == 4
    assert f"etcd {version} on dcs-00, dcs-01" in problem.message
    assert "version: 3." in problem.fix and "accept_risks: [" in problem.fix
    # each advisory's fixed releases are in the details
    assert all("fixed in" in line for line in problem.details)


def test_accepting_every_named_risk_and_only_then_lets_a_version_deploy() -> None:
    problem = deploy_refusal({V("3.5.16"): ["dcs-00"]}, accepted=[])
    assert problem is not None
    names = problem.message.split(": ")[-1].split(", ")
    assert deploy_refusal({V("3.5.16"): ["dcs-00"]}, accepted=names) is None
    # an alias counts as the advisory's name; one left out keeps the refusal
    aliases = ["GHSA-q8m4-xhhv-38mg", *names[1:]]
    assert deploy_refusal({V("3.5.16"): ["dcs-00"]}, accepted=aliases) is None
    still = deploy_refusal({V("3.5.16"): ["dcs-00"]}, accepted=names[1:])
    assert still is not None and still.message.endswith(names[0])
