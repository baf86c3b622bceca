"""Working on several member hosts: all at once, and failures that name the host."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import TypeVar

from dcsctl import spec
from dcsctl.errors import DcsctlError
from dcsctl.hosts.protocol import Host

T = TypeVar("T")


def in_parallel(members: Sequence[spec.Member], work: Callable[[spec.Member], T]) -> list[T]:
    """Every host at once; the first failure is raised after all have finished."""
    if not members:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(members)) as pool:
        futures = [pool.submit(work, m) for m in members]
        concurrent.futures.wait(futures)
    return [f.result() for f in futures]


def raise_unless_ok(host: Host, ok: bool, what: str, stderr: str) -> None:
    if not ok:
        raise DcsctlError(f"{host.name}: {what} failed ({stderr.strip() or 'no output'})",
                          fix="correct the cause on that host, then run `dcsctl up` again "
                          "(it resumes)")


def check(host: Host, argv: list[str]) -> None:
    """Run a long host command (installs), raising when it fails."""
    result = host.run(argv, timeout=900)
    raise_unless_ok(host, result.ok, f"`{' '.join(argv[:2])} …`", result.stderr)
