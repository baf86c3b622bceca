"""etcd versions as data: what dcsctl recommends, what is known to be wrong with each
release line, and which upgrade and downgrade paths etcd supports."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from dcsctl.errors import EnvironmentProblem


class Version(NamedTuple):
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def line(self) -> str:
        """The release line, e.g. 3.6."""
        return f"{self.major}.{self.minor}"

    @classmethod
    def parse(cls, text: str) -> Version:
        match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
        if not match:
            raise ValueError(f"no version number in {text!r}")
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3)))


# The newest patch release of each line dcsctl supports, tested by the suite (the binaries
# scripts/setup builds from etcd's Go modules: tools/etcd-build/v*).
NEWEST: dict[str, Version] = {
    "3.5": Version(3, 5, 36),
    "3.6": Version(3, 6, 17),
    "3.7": Version(3, 7, 4),
}
# The lab default: the newest patch of the newest line that passes the whole suite,
# real Patroni included.
RECOMMENDED = NEWEST["3.7"]


def newest_patch(version: Version) -> Version | None:
    return NEWEST.get(version.line)


class Impact(enum.StrEnum):
    UNUSABLE = "unusable"  # dcsctl refuses to run it, whatever the spec says
    # A caller without a permission is served anyway: RBAC, the point of the users and
    # roles dcsctl sets up, does not hold.
    AUTH_BYPASS = "auth-bypass"
    # One etcd user can read or write outside its grants: Patroni scopes sharing the
    # cluster are not isolated from each other.
    CROSS_SCOPE = "cross-scope"
    # A revoked certificate still gets in: `certs revoke` does not lock anyone out.
    CRL_BYPASS = "crl-bypass"
    # The line gets no more fixes: the next advisory will not be fixed in it.
    UNSUPPORTED = "unsupported"
    WARN = "warn"


# What breaks dcsctl's security model: `up`, `member add/replace` and `upgrade` refuse to
# deploy a version with one of these unless the spec accepts each by name
# (etcd.accept_risks). Availability bugs stay warnings: they do not let anyone in.
BREAKS_SECURITY_MODEL: frozenset[Impact] = frozenset(
    {Impact.AUTH_BYPASS, Impact.CROSS_SCOPE, Impact.CRL_BYPASS, Impact.UNSUPPORTED})


@dataclass(frozen=True)
class Affected:
    """One release line's affected range: first_bad <= version < fixed_in, within the line
    of first_bad (several lines: several ranges)."""

    first_bad: Version
    fixed_in: Version | None  # None: never fixed in this line

    def __contains__(self, version: object) -> bool:
        if not isinstance(version, Version) or version < self.first_bad:
            return False
        if self.fixed_in is None:
            return version.line == self.first_bad.line
        return version < self.fixed_in


@dataclass(frozen=True)
class Advisory:
    ident: str  # a CVE, or a short name where there is none
    aliases: tuple[str, ...]
    impact: Impact
    problem: str  # what it breaks, for a dcsctl user
    affected: tuple[Affected, ...]

    def affects(self, version: Version) -> bool:
        return any(version in affected for affected in self.affected)

    @property
    def fixed_in(self) -> tuple[Version, ...]:
        return tuple(a.fixed_in for a in self.affected if a.fixed_in is not None)

    def fixed_text(self) -> str:
        return ", ".join(str(v) for v in self.fixed_in) or "no release"

    def describe(self) -> str:
        names = " / ".join((self.ident, *self.aliases))
        return f"{names}: {self.problem} (fixed in {self.fixed_text()})"


V = Version
# From etcd's security advisories and changelogs. 3.4 reached its end of life with 3.4.45
# (2026-06): an advisory with no 3.4 fix leaves every 3.4 release affected.
ADVISORIES: tuple[Advisory, ...] = (
    Advisory("etcd-3.3-or-older", (), Impact.UNUSABLE,
             "is older than 3.4: no v3 auth features dcsctl relies on",
             (Affected(V(0, 0, 0), V(3, 4, 0)),)),
    Advisory("etcd-3.4-eol", (), Impact.UNSUPPORTED, "3.4 is end of life and gets no more fixes",
             (Affected(V(3, 4, 0), None),)),
    Advisory("etcd-3.5-data-inconsistency", (), Impact.WARN,
             "can lose data after SIGKILL (data-inconsistency bug)",
             (Affected(V(3, 5, 0), V(3, 5, 3)),)),
    Advisory("CVE-2026-33413", ("GHSA-q8m4-xhhv-38mg",), Impact.AUTH_BYPASS,
             "with auth on, callers without a permission can use the member list, alarm and "
             "lease APIs and compact: one user can revoke another scope's leader lease",
             (Affected(V(3, 4, 0), V(3, 4, 42)), Affected(V(3, 5, 0), V(3, 5, 28)),
              Affected(V(3, 6, 0), V(3, 6, 9)))),
    Advisory("CVE-2026-33343", ("GHSA-rfx7-8w68-q57q",), Impact.CROSS_SCOPE,
             "nested transactions skip the key-range RBAC checks: a Patroni user can read "
             "and write another scope's keys",
             (Affected(V(3, 4, 0), V(3, 4, 42)), Affected(V(3, 5, 0), V(3, 5, 28)),
              Affected(V(3, 6, 0), V(3, 6, 9)))),
    Advisory("CVE-2026-44283", ("GHSA-x35m-3gp4-4fh5",), Impact.CROSS_SCOPE,
             "PrevKv and lease attachment inside a transaction bypass RBAC: a Patroni user "
             "can read another scope's values or attach its keys to a lease it controls",
             (Affected(V(3, 4, 0), V(3, 4, 44)), Affected(V(3, 5, 0), V(3, 5, 30)),
              Affected(V(3, 6, 0), V(3, 6, 11)))),
    Advisory("CVE-2026-59818", ("GHSA-3wh4-j44w-pg92",), Impact.CRL_BYPASS,
             "the client CRL is not enforced on the gRPC listener when "
             "--listen-client-http-urls splits the listeners: a revoked certificate still "
             "gets in on a member configured that way by hand",
             (Affected(V(3, 4, 0), None), Affected(V(3, 5, 0), V(3, 5, 32)),
              Affected(V(3, 6, 0), V(3, 6, 13)), Affected(V(3, 7, 0), V(3, 7, 0)))),
    Advisory("CVE-2026-73499", ("GHSA-xg4h-6gfc-h4m8",), Impact.CROSS_SCOPE,
             "a watch with an open-ended range (from a key to the end of the keyspace) "
             "delivers other scopes' events, values included, to a Patroni user",
             (Affected(V(3, 4, 0), None), Affected(V(3, 5, 0), V(3, 5, 33)),
              Affected(V(3, 6, 0), V(3, 6, 14)), Affected(V(3, 7, 0), V(3, 7, 1)))),
    Advisory("CVE-2026-73500", ("GHSA-6vch-q96h-7gc3",), Impact.WARN,
             "TCP connections that never finish the TLS handshake each hold memory until "
             "etcd runs out of it: anyone who reaches the client port can stop the DCS",
             (Affected(V(3, 4, 0), None), Affected(V(3, 5, 0), V(3, 5, 33)),
              Affected(V(3, 6, 0), V(3, 6, 14)), Affected(V(3, 7, 0), V(3, 7, 1)))),
    Advisory("etcd-member-list-admin-only", (), Impact.WARN,
             "lets only the root user list members: Patroni's scope users cannot discover "
             "the cluster's members",
             (Affected(V(3, 5, 28), V(3, 5, 29)), Affected(V(3, 6, 9), V(3, 6, 10)))),
)


def advisories(version: Version) -> list[Advisory]:
    return [a for a in ADVISORIES if a.affects(version)]


def refusal(version: Version) -> Advisory | None:
    """The advisory that rules this version out, if any."""
    return next((a for a in advisories(version) if a.impact is Impact.UNUSABLE), None)


def cross_scope(version: Version) -> list[Advisory]:
    """Advisories that break the isolation between two etcd users (two Patroni scopes)."""
    return [a for a in advisories(version)
            if a.impact in (Impact.CROSS_SCOPE, Impact.AUTH_BYPASS)]


def risk_names() -> frozenset[str]:
    """Every name an advisory goes by: what `etcd.accept_risks` may list."""
    return frozenset(name for a in ADVISORIES if a.impact is not Impact.UNUSABLE
                     for name in (a.ident, *a.aliases))


def unaccepted_risks(version: Version, accepted: Iterable[str]) -> list[Advisory]:
    """The advisories that rule out deploying `version`, less those accepted by name."""
    named = set(accepted)
    return [a for a in advisories(version) if a.impact in BREAKS_SECURITY_MODEL
            and not named & {a.ident, *a.aliases}]


def members_by_version(running: Iterable[tuple[str, Version]]) -> dict[Version, list[str]]:
    """member -> version pairs, grouped: the members that run each version."""
    found: dict[Version, list[str]] = {}
    for name, version in running:
        found.setdefault(version, []).append(name)
    return found


def deploy_refusal(running: Mapping[Version, Sequence[str]],
                   accepted: Iterable[str]) -> EnvironmentProblem | None:
    """Why these versions (each with the members that would run it) may not be deployed,
    or None. Every advisory is named at once, so one edit of the spec settles them all."""
    accepted = tuple(accepted)
    found: dict[Advisory, list[Version]] = {}
    for version in sorted(running):
        for advisory in unaccepted_risks(version, accepted):
            found.setdefault(advisory, []).append(version)
    if not found:
        return None
    where = "; ".join(f"{v} on {', '.join(running[v])}" for v in sorted(
        {v for versions in found.values() for v in versions}))
    lines = tuple(f"{a.describe()}" for a in found)
    names = ", ".join(a.ident for a in found)
    target = max((RECOMMENDED, *(newest_patch(v) or RECOMMENDED for v in running)))
    return EnvironmentProblem(
        f"refusing to deploy etcd {where}: affected by {len(found)} "
        f"advisor{'y' if len(found) == 1 else 'ies'} that break dcsctl's security model "
        f"(auth bypass, cross-scope read, CRL bypass, unsupported line): {names}",
        fix=f"deploy a fixed release — install: {{method: release, version: {target}}} on "
        f"SSH hosts, etcd.bin_dir or DCSCTL_ETCD_BIN_DIR with etcd {target} in the lab — "
        f"or accept each risk by name in the spec: etcd: {{accept_risks: [{names}]}}",
        details=lines,
    )


def upgrade_advice(version: Version) -> str:
    """Which release to move to: the newest patch of the line, else the recommended one."""
    newest = newest_patch(version)
    return str(newest) if newest and newest > version else str(RECOMMENDED)


def warnings(version: Version) -> list[str]:
    """What a user running this version should hear."""
    return [f"etcd {version}: {a.describe()}; upgrade to {upgrade_advice(version)}"
            for a in advisories(version) if a.impact is not Impact.UNUSABLE]


# -- upgrade and downgrade paths --

# The oldest patch release of a line that may be upgraded to the next line (etcd's upgrade
# guides). 3.5 -> 3.6 was 3.5.20, then 3.5.26, and is 3.5.32 since 2026-08: that release
# checks the WAL too in `etcdutl check v2store` and can skip the v2 check on 3.6.
MINOR_UPGRADE_FLOOR: dict[str, Version] = {
    "3.4": Version(3, 4, 0),
    "3.5": Version(3, 5, 32),
    "3.6": Version(3, 6, 11),
}
# `etcdutl check v2store` (a 3.5 tool) must pass on a data dir before 3.6 may open it.
V2STORE_CHECK_BEFORE = Version(3, 6, 0)
# etcd 3.7.0-3.7.3 cannot replay the raft entries 3.5 wrote (its v2 requests: they panic
# with "unmarshal should never fail"); 3.6 still can, and 3.7.4 skips them. Before a member
# meets such a 3.7 its WAL must start after them: a raft snapshot taken on 3.6 (found the
# hard way: 3.5.35 -> 3.6.16 -> 3.7.3 in one afternoon, with fewer than snapshot-count
# entries in between). Proven both ways by tests/integration/test_v2_wal_replay.py.
V2_WAL_REPLAY_PANICS = Affected(Version(3, 7, 0), Version(3, 7, 4))


def needs_snapshot_on_3_6(current: Version, wanted: Version) -> bool:
    """Must a member moving from `current` to `wanted` take a raft snapshot on 3.6 first?"""
    return current < V2_WAL_REPLAY_PANICS.first_bad and wanted in V2_WAL_REPLAY_PANICS
# Lines that can go back one minor through etcd's downgrade API (3.7 -> 3.6, 3.6 -> 3.5).
DOWNGRADE_FROM: frozenset[str] = frozenset({"3.6", "3.7"})


@dataclass(frozen=True)
class PathProblem:
    """Why etcd does not support a version change, and the steps that would get there."""

    reason: str
    steps: tuple[Version, ...] = ()

    def __str__(self) -> str:
        if not self.steps:
            return self.reason
        return f"{self.reason}; go there in steps: {' -> '.join(str(s) for s in self.steps)}"


def upgrade_problem(current: Version, target: Version) -> PathProblem | None:  # noqa: PLR0911
    """Why etcd does not support going from `current` to `target`, or None if it does."""
    if target == current:
        return None
    if target < current:
        return PathProblem(f"{current} -> {target} is a downgrade: use `dcsctl downgrade`")
    if target.major != current.major:
        return PathProblem(f"{current} -> {target} changes the major version")
    if target.minor == current.minor:
        return None  # patch upgrade
    steps = _steps(current, target)
    if target.minor > current.minor + 1:
        return PathProblem(f"{current} -> {target} skips a minor version; etcd upgrades one "
                           "minor at a time", steps)
    floor = MINOR_UPGRADE_FLOOR.get(current.line)
    if floor is None:
        return PathProblem(f"no known-safe path from {current} to {target}")
    if current < floor:
        return PathProblem(f"{current} -> {target} needs every member on {floor} or later "
                           f"first (etcd's upgrade guide): upgrade to {current.line}.x first",
                           steps)
    return None


def _steps(current: Version, target: Version) -> tuple[Version, ...]:
    """The supported chain from `current` to `target`: up to each line's floor (its newest
    patch, when known), then one minor at a time."""
    steps: list[Version] = []
    at = current
    while at.line != target.line:
        floor = MINOR_UPGRADE_FLOOR.get(at.line)
        if floor is None:
            return ()
        if at < floor:
            at = newest_patch(at) or floor
            steps.append(at)
        following = Version(at.major, at.minor + 1, 0)
        at = newest_patch(following) or following
        if at.line == target.line:
            at = target
        steps.append(at)
    return tuple(steps)


def downgrade_problem(current: Version, target_line: str) -> PathProblem | None:
    """Why etcd cannot downgrade a cluster running `current` to the `target_line` (e.g.
    "3.6"), or None if its downgrade API can."""
    match = re.fullmatch(r"(\d+)\.(\d+)", target_line)
    if not match:
        return PathProblem(f"{target_line!r} is not a release line such as 3.6")
    major, minor = int(match.group(1)), int(match.group(2))
    if (major, minor) >= (current.major, current.minor):
        return PathProblem(f"{current} -> {target_line} is not a downgrade")
    if current.line not in DOWNGRADE_FROM:
        return PathProblem(f"etcd {current.line} has no downgrade support (it came with 3.6); "
                           "restore a snapshot taken before the upgrade instead")
    if (major, minor) != (current.major, current.minor - 1):
        return PathProblem(f"{current} -> {target_line} goes back more than one minor; etcd "
                           "downgrades one minor at a time")
    return None
