"""How phases hand results on: only through Done.result into the run's Handover, by
name and type; a skipped phase hands on nothing; a phase runs alone given its inputs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dcsctl.workflow import UNCHANGED, Done, Handover, Phase, SilentProgress, run_phases


@dataclass(frozen=True)
class Found:
    members: frozenset[str]


def _workflow(handover: Handover, *, found_already: bool = False) -> list[Phase]:
    """Two phases: `find` hands on what it found, `act` acts on exactly that."""

    def act() -> str:
        found = handover.need("find", Found)
        return f"acted on {', '.join(sorted(found.members))}"

    return [
        Phase("find", "find members", lambda: Done("found 2", Found(frozenset({"a", "b"}))),
              lambda: found_already),
        Phase("act", "act on what find found", act),
    ]


def test_a_result_handed_on_is_what_the_next_phase_takes() -> None:
    handover = Handover()
    outcomes = run_phases(_workflow(handover), SilentProgress(), handover)
    assert [o.note for o in outcomes] == ["found 2", "acted on a, b"]
    assert handover.get("find", Found) == Found(frozenset({"a", "b"}))
    assert handover.get("act", object) is None  # a plain note hands nothing on


def test_a_phase_skipped_by_its_check_hands_on_nothing() -> None:
    handover = Handover()
    phases = _workflow(handover, found_already=True)[:1]
    outcomes = run_phases(phases, SilentProgress(), handover)
    assert outcomes[0].note == UNCHANGED and not outcomes[0].changed
    assert handover.get("find", Found) is None


def test_a_phase_that_needs_a_result_never_handed_on_says_which() -> None:
    handover = Handover()
    with pytest.raises(LookupError, match="'find' handed on no Found"):
        run_phases(_workflow(handover, found_already=True), SilentProgress(), handover)


def test_a_phase_runs_alone_given_its_inputs() -> None:
    handover = Handover(find=Found(frozenset({"c"})))
    act = _workflow(handover)[1]
    assert act.run() == "acted on c"


def test_a_result_of_another_type_is_not_taken() -> None:
    handover = Handover(find="not a Found")
    assert handover.get("find", Found) is None
    with pytest.raises(LookupError):
        handover.need("find", Found)


def test_checks_run_before_work_and_a_done_phase_does_no_work() -> None:
    calls: list[str] = []

    def check() -> bool:
        calls.append("check")
        return True

    def work() -> str:
        calls.append("work")
        return "did"

    outcomes = run_phases([Phase("p", "a phase", work, check)], SilentProgress())
    assert calls == ["check"]
    assert outcomes[0].note == UNCHANGED
