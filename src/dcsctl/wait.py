"""The one place that sleeps: wait for a condition, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from dcsctl.errors import ClusterUnhealthy

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    fix: str = "",
    interval: float = 0.05,
    max_interval: float = 0.5,
    last_error: Callable[[], str] | None = None,
) -> T:
    """Poll `check` until it returns a value other than None/False; raise after `timeout`.

    The error says what was awaited, how long, and the last thing seen going wrong.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            seen = last_error() if last_error else ""
            raise ClusterUnhealthy(
                f"{what} within {timeout:.0f} s"
                + (f" (last: {seen})" if seen else ""),
                fix=fix,
            )
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, max_interval)


def ticks(interval: float) -> Iterator[float]:
    """Yield the monotonic time once every `interval` seconds, forever (a refresh loop's
    pace); a slow iteration is not made up for with a burst."""
    while True:
        started = time.monotonic()
        yield started
        time.sleep(max(0.0, started + interval - time.monotonic()))
