"""Per-test SSH labs: real sshd servers on loopback, always stopped when the test ends."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.ssh.sshd import SshLab, start_ssh_lab


@pytest.fixture
def ssh_lab_factory(tmp_path: Path) -> Iterator[Callable[..., SshLab]]:
    """`make(hosts, **kw)` starts a lab under tmp_path; every lab made is stopped, pass or fail.

    Keyword arguments go to start_ssh_lab (port, user, extra_users).
    """
    made: list[SshLab] = []
    numbers = itertools.count()

    def make(hosts: Mapping[str, str], **kw: Any) -> SshLab:
        lab = start_ssh_lab(tmp_path / f"ssh-lab-{next(numbers)}", hosts, **kw)
        made.append(lab)
        return lab

    try:
        yield make
    finally:
        for lab in made:
            lab.stop()
