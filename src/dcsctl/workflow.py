"""Workflows are lists of named phases that observe before they act.

A phase whose `done_if` already holds is reported as unchanged and skipped, so a workflow
interrupted half-way is finished by running it again (kubeadm phases, etcdadm's
"added? started?").

Phases talk only through what they hand on (kubeadm's phases over one typed data
interface): a phase's `run` returns its note and, as `Done.result`, a typed value; the
run's `Handover` keeps it under the phase's name, and a later phase takes it from there
by name and type. Nothing is left in an attribute for a later phase to find, so a phase
runs alone given a `Handover` with its inputs, and a `done_if` only observes.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")
Item = TypeVar("Item")

UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Done(Generic[R]):
    """What a phase hands on besides its note: a typed result that later phases (and the
    workflow, for its result) take from the run's Handover, instead of an attribute set
    on the side."""

    note: str
    result: R


class Handover:
    """The results the phases of one run have handed on so far, by phase name.

    Only `run_phases` adds to it (each phase's `Done.result`); a phase skipped by its
    `done_if` hands on nothing. Built with `given` results, it lets a phase run alone,
    as kubeadm runs one phase over its data interface.
    """

    def __init__(self, **given: object) -> None:
        self._results: dict[str, object] = dict(given)

    def hand_on(self, phase: str, result: object) -> None:
        self._results[phase] = result

    def get(self, phase: str, kind: type[R]) -> R | None:
        """What `phase` handed on, if it ran and handed on a `kind`."""
        found = self._results.get(phase)
        return found if isinstance(found, kind) else None

    def need(self, phase: str, kind: type[R]) -> R:
        """What `phase` handed on; a phase that always runs before the caller must have."""
        found = self.get(phase, kind)
        if found is None:
            # A workflow built wrong (a phase before the one it depends on), not bad input.
            raise LookupError(f"phase {phase!r} handed on no {kind.__name__}")
        return found


@dataclass(frozen=True)
class Phase:
    name: str
    summary: str
    run: Callable[[], str | Done[Any]]
    """Does the work; returns a short note of what it changed (and maybe a result to hand
    on)."""
    done_if: Callable[[], bool] | None = None
    """Observes, never changes anything; True means nothing is left to do."""
    check_only: bool = False
    """A verification (preflight, health): it never counts as a change."""


@dataclass(frozen=True)
class PhaseOutcome:
    name: str
    summary: str
    changed: bool
    note: str
    seconds: float


class Progress(Protocol):
    def phase_started(self, phase: Phase) -> None: ...
    def phase_finished(self, outcome: PhaseOutcome) -> None: ...
    def message(self, text: str) -> None: ...
    def transfer(self, label: str, done: int, total: int | None) -> None: ...


class SilentProgress:
    def phase_started(self, phase: Phase) -> None:
        pass

    def phase_finished(self, outcome: PhaseOutcome) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def transfer(self, label: str, done: int, total: int | None) -> None:
        pass


def run_phases(phases: Sequence[Phase], progress: Progress,
               handover: Handover | None = None) -> list[PhaseOutcome]:
    """Run each phase unless its `done_if` holds; each result a phase hands on goes into
    `handover`, where the phases after it (closures over it) take it."""
    handover = handover if handover is not None else Handover()
    outcomes = []
    for phase in phases:
        progress.phase_started(phase)
        started = time.monotonic()
        if phase.done_if is not None and phase.done_if():
            outcome = PhaseOutcome(phase.name, phase.summary, False, UNCHANGED, 0.0)
        else:
            done = phase.run()
            if isinstance(done, Done):
                handover.hand_on(phase.name, done.result)
                note = done.note
            else:
                note = done
            changed = not phase.check_only and note != UNCHANGED
            outcome = PhaseOutcome(
                phase.name, phase.summary, changed, note, time.monotonic() - started
            )
        progress.phase_finished(outcome)
        outcomes.append(outcome)
    return outcomes


def in_parallel(items: Sequence[Item], work: Callable[[Item], T]) -> list[T]:
    """Every member (host) at once; the first failure is raised after all have finished."""
    if not items:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(items)) as pool:
        futures = [pool.submit(work, item) for item in items]
        concurrent.futures.wait(futures)
    return [f.result() for f in futures]
