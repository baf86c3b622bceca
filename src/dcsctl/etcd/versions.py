"""etcd versions and what is known to be wrong with them, as a table."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import NamedTuple


class Version(NamedTuple):
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @classmethod
    def parse(cls, text: str) -> Version:
        match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
        if not match:
            raise ValueError(f"no version number in {text!r}")
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3)))


class Severity(enum.StrEnum):
    REFUSE = "refuse"
    WARN = "warn"


@dataclass(frozen=True)
class Advisory:
    first_bad: Version
    fixed_in: Version
    severity: Severity
    problem: str


ADVISORIES: tuple[Advisory, ...] = (
    Advisory(Version(0, 0, 0), Version(3, 4, 0), Severity.REFUSE,
             "is older than 3.4: no v3 auth features dcsctl relies on"),
    Advisory(Version(3, 4, 0), Version(3, 5, 0), Severity.WARN,
             "is end of life (3.4 gets no more fixes)"),
    Advisory(Version(3, 5, 0), Version(3, 5, 3), Severity.WARN,
             "can lose data after SIGKILL (data-inconsistency bug fixed in 3.5.3)"),
    Advisory(Version(3, 5, 0), Version(3, 5, 28), Severity.WARN,
             "has the auth bypass CVE-2026-33413 / CVE-2026-33343 (fixed in 3.5.28)"),
)

RECOMMENDED = Version(3, 5, 30)


def advisories(version: Version) -> list[Advisory]:
    return [a for a in ADVISORIES if a.first_bad <= version < a.fixed_in]


def refusal(version: Version) -> Advisory | None:
    """The advisory that rules this version out, if any."""
    return next((a for a in advisories(version) if a.severity is Severity.REFUSE), None)


def warnings(version: Version) -> list[str]:
    """What a user running this version should hear."""
    return [f"etcd {version} {a.problem}; upgrade to {RECOMMENDED}"
            for a in advisories(version) if a.severity is Severity.WARN]


# The oldest patch release of a minor version that may be upgraded to the next minor
# (etcd's upgrade guides: "update 3.5 members to 3.5.26 or later before 3.6").
MINOR_UPGRADE_FLOOR: dict[tuple[int, int], Version] = {
    (3, 4): Version(3, 4, 0),
    (3, 5): Version(3, 5, 26),
}


def upgrade_problem(current: Version, target: Version) -> str | None:  # noqa: PLR0911
    """Why etcd does not support going from `current` to `target`, or None if it does."""
    if target == current:
        return None
    if target < current:
        return f"{current} -> {target} is a downgrade; etcd supports only upgrades here"
    if target.major != current.major:
        return f"{current} -> {target} changes the major version"
    if target.minor == current.minor:
        return None  # patch upgrade
    if target.minor > current.minor + 1:
        return (f"{current} -> {target} skips a minor version; upgrade one minor at a time "
                f"({current.major}.{current.minor + 1} first)")
    floor = MINOR_UPGRADE_FLOOR.get((current.major, current.minor))
    if floor is None:
        return f"no known-safe path from {current} to {target}"
    if current < floor:
        return (f"{current} -> {target} needs every member on {floor} or later first "
                f"(etcd's upgrade guide)")
    return None
