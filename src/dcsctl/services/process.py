"""Lab runtime: each member is a detached etcd process with a pidfile and a log file.

A pidfile records the PID *and* the process start time, so `stop` never signals a
process that merely reused the PID after ours died.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import BinaryIO

from dcsctl.errors import ClusterUnhealthy, EnvironmentProblem
from dcsctl.files import atomic_write
from dcsctl.wait import wait_until


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    start_ticks: int
    executable: str


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def _start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _alive(record: ProcessRecord) -> bool:
    fields = _stat_fields(record.pid)
    if fields is None or int(fields[19]) != record.start_ticks:
        return False
    if fields[0] == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(record.pid, os.WNOHANG)  # reap our own child
        return False
    return True


def terminate(send: Callable[[signal.Signals], object], alive: Callable[[], bool], *,
              timeout: float) -> None:
    """SIGTERM, wait up to `timeout`; a process that ignores it gets SIGKILL."""
    send(signal.SIGTERM)
    try:
        wait_until(lambda: not alive(), timeout=timeout, what="etcd did not stop")
    except ClusterUnhealthy:
        if alive():
            send(signal.SIGKILL)
            wait_until(lambda: not alive(), timeout=5, what="etcd did not die")


def _open_log(path: Path) -> BinaryIO:
    """The member's log, for appending; a symbolic link in its place is refused."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise EnvironmentProblem(f"{path} is a symbolic link; refusing to log through it",
                                 fix=f"remove {path} (dcsctl writes the log there itself)"
                                 ) from exc
    return os.fdopen(fd, "ab")


class ProcessService:
    """Start, observe and stop one member's etcd process by its pidfile."""

    def __init__(self, pidfile: Path, logfile: Path) -> None:
        self.pidfile = pidfile
        self.logfile = logfile

    def record(self) -> ProcessRecord | None:
        try:
            data = json.loads(self.pidfile.read_text())
            return ProcessRecord(int(data["pid"]), int(data["start_ticks"]), data["executable"])
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def running_pid(self) -> int | None:
        record = self.record()
        return record.pid if record and _alive(record) else None

    def is_active(self) -> bool:
        return self.running_pid() is not None

    def start(self, executable: PurePath, environment: Mapping[str, str]) -> int:
        """Spawn etcd detached from our session, with only the given environment.

        The environment is built from the member's config alone: nothing of the user's
        shell (ETCDCTL_PASSWORD and the like) leaks into etcd (docs/guide-defects.md 13).
        """
        running = self.running_pid()
        if running is not None:
            return running
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with _open_log(self.logfile) as log:
            process = subprocess.Popen(
                [str(executable)],
                env=dict(environment),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        ticks = _start_ticks(process.pid) or 0
        record = {"pid": process.pid, "start_ticks": ticks, "executable": str(executable)}
        atomic_write(self.pidfile, (json.dumps(record) + "\n").encode(), 0o644)
        return process.pid

    def stop(self, *, timeout: float = 15.0) -> bool:
        """SIGTERM, wait, then SIGKILL; True if a process of ours was stopped."""
        record = self.record()
        if record is None or not _alive(record):
            self.pidfile.unlink(missing_ok=True)
            return False
        terminate(lambda sig: os.kill(record.pid, sig), lambda: _alive(record),
                  timeout=timeout)
        self.pidfile.unlink(missing_ok=True)
        return True

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """For fault tests: deliver `sig` to our process only."""
        record = self.record()
        if record is not None and _alive(record):
            os.kill(record.pid, sig)

    def log_tail(self, lines: int = 20) -> list[str]:
        try:
            content = self.logfile.read_bytes()[-64 * 1024 :]
        except FileNotFoundError:
            return []
        return content.decode(errors="replace").splitlines()[-lines:]
