"""The recorded workload on the testbed: tests/support/history.py run by the agent on the
control side (where the hosts are reachable), its history checked by histcheck here.

    with recording(cluster, "leader-partition") as run:
        ...fault...
        run.took_effect()                      # writes from now on count as "during"
        run.wait_acked(20)                     # ...and this many must be acknowledged
    run.history                                # HistoryFigures, once the block is left

Every recording writes under a prefix of its own (`/history/<name>-<n>/`), asserted empty
before it starts.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.scenarios import HistoryFigures
from tests.support.anomalies import read_history
from tests.support.history import acked_write, check_history
from tests.support.lab import VENV_BIN
from tests.testbed.deployment import Deployment

_fresh = itertools.count()


@dataclass
class Recording:
    name: str
    prefix: str
    path: Path
    process: subprocess.Popen[str]
    effective_ns: int = 0  # when the fault took effect (0: from the start)
    history: HistoryFigures | None = None
    error: str = ""  # the agent's: a client crashed, or it never got ready
    lines: list[str] = field(default_factory=list)

    def took_effect(self) -> None:
        self.effective_ns = time.monotonic_ns()

    def wait_acked(self, count: int, timeout: float = 60) -> int:
        """Block until `count` writes called since the fault took effect are acknowledged;
        fails after `timeout`. The control side's monotonic clock is this one's."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"wait {self.effective_ns} {count} {timeout}\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().split()  # bounded: the agent answers by then
        assert answer and answer[0] == "ok", (
            f"{self.name}: fewer than {count} writes acknowledged within {timeout} s after "
            f"the fault took effect ({answer})")
        return int(answer[1])

    def acked_since(self, since_ns: int) -> list[int]:
        """Return times of the writes acknowledged that were called at or after `since_ns`
        (from the history file, once written)."""
        return sorted(r["return"] for r in read_history(self.path)
                      if r["call"] >= since_ns and acked_write(r))


@contextmanager
def recording(cluster: Deployment, name: str, max_seconds: float = 600,
              run_out: bool = False) -> Iterator[Recording]:
    """The workload under a fresh prefix, ready (20 writes acknowledged) when the block
    starts; stopped when it ends (or, `run_out`, left to run to `max_seconds`), then
    checked."""
    number = next(_fresh)
    prefix = f"/history/{name}-{number}/"
    found = cluster.agent("keys", prefix)
    assert found == [], f"{prefix} is not fresh: {found}"
    path = cluster.home.parent / "histories" / f"{name}-{number}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    cluster.bed.net.check_isolation(cluster.bed.all_hosts())
    process = subprocess.Popen(
        ["ip", "netns", "exec", cluster.bed.net.control_ns, str(VENV_BIN / "python"), "-m",
         "tests.testbed.agent", str(cluster.spec_file), "history", prefix, str(path),
         str(max_seconds)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cluster.environ, cwd=str(VENV_BIN.parent.parent))
    run = Recording(name, prefix, path, process)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # bounded: the agent gives up after 60 s
        assert first == "ready\n", f"the workload did not start: {first} {process.stderr}"
        yield run
        if run_out:
            process.wait(timeout=max_seconds + 120)
    finally:
        rest, errors = process.communicate(timeout=120)  # closes stdin: the agent stops
    summary = json.loads(rest.strip().splitlines()[-1])
    run.error = summary["error"] or ("" if process.returncode == 0 else errors[-500:])
    checked = check_history(path)
    assert checked.code in (0, 1), f"histcheck could not judge {path}:\n{checked.output}"
    during = len(run.acked_since(run.effective_ns))
    run.history = HistoryFigures(name, prefix, path, summary["operations"],
                                 summary["acked_writes"], summary["unknown"], summary["failed"],
                                 during, checked.linearizable, checked.output,
                                 summary["failures"])


def monotonic_of(wall: float) -> int:
    """A wall-clock time (another process's time.time()) on this machine's monotonic clock."""
    return int((wall - time.time() + time.monotonic()) * 1e9)
