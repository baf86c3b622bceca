"""What every Host adapter offers: run argv, read and write files. Local or over SSH."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Protocol

# The shell programs dcsctl runs on a host exit with this when they found nothing to do.
UNCHANGED_EXIT = 3


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @classmethod
    def of(cls, argv: Sequence[str], completed: subprocess.CompletedProcess[bytes]) -> Result:
        return cls(tuple(argv), completed.returncode,
                   completed.stdout.decode(errors="replace"),
                   completed.stderr.decode(errors="replace"))


class Host(Protocol):
    name: str

    def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float = 60.0
    ) -> Result: ...

    def write(
        self, path: PurePath, content: bytes, mode: int, owner: str | None = None
    ) -> bool:
        """Atomically make `path` hold `content` with `mode` (and `owner`, user:group).

        Returns False when it already did.
        """
        ...

    def read(self, path: PurePath) -> bytes | None:
        """The file's content, or None when it does not exist."""
        ...
