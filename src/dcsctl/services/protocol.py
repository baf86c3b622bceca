"""What a member's service offers, whatever runs it (lab process, remote process, systemd)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Protocol


class Service(Protocol):
    def start(self, executable: PurePath, environment: Mapping[str, str]) -> int | None:
        """Start etcd unless it runs; the PID when known."""
        ...

    def stop(self, *, timeout: float = 15.0) -> bool:
        """Stop etcd; True if it was running."""
        ...

    def running_pid(self) -> int | None: ...

    def is_active(self) -> bool: ...

    def log_tail(self, lines: int = 20) -> list[str]: ...
