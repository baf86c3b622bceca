"""What the benchmark scripts share: a clean environment, bounded steps, bounded polls,
and the port checks that let two clusters use the same addresses one after the other."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests import support  # noqa: E402 - the repository's own shared test code
from tests.support import start_ticks  # noqa: E402

BIN = REPO / ".venv" / "bin"
OUT = REPO / "benchmarks" / "out"
STEP_TIMEOUT_S = 120.0


def clean_environ() -> dict[str, str]:
    """The caller's environment without ETCD_*/ETCDCTL_*/DCSCTL_* settings (etcdctl aborts
    on a flag an exported variable duplicates; a stray DCSCTL_HOME would mix clusters)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("ETCD_", "ETCDCTL_", "DCSCTL_"))}


def run(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = STEP_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run one step, bounded in time; raise with its output if it fails."""
    result = subprocess.run(argv, env=env if env is not None else clean_environ(), cwd=cwd,
                            capture_output=True, text=True, timeout=timeout, check=False,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... exited {result.returncode}:\n"
                           f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result


def poll(check: Callable[[], bool], *, what: str, timeout: float = STEP_TIMEOUT_S,
         interval: float = 0.01) -> None:
    """Poll `check` until it is true; TimeoutError after `timeout` seconds."""
    support.poll(check, timeout, what, interval)


def port_free(ip: str, port: int) -> bool:
    """True if nothing listens on ip:port (SO_REUSEADDR, as Go listeners: TIME_WAIT is ok)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError:
            return False
        return True


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """SIGTERM/SIGHUP unwind like Ctrl-C, so every `finally` cleans up."""
    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def kill_recorded(records: list[tuple[int, int]]) -> list[int]:
    """SIGKILL the recorded (pid, start ticks) that are still the same live process."""
    killed = []
    for pid, ticks in records:
        if start_ticks(pid) == ticks:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    if killed:
        poll(lambda: all(start_ticks(p) is None for p in killed), what="killed etcd gone",
             timeout=10)
    return killed
