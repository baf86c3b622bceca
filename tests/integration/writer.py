"""A bounded background writer that records every acknowledged write (for fault tests)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from dcsctl.errors import DcsctlError
from tests.support import cluster_of, poll
from tests.support.lab import LabCluster


@dataclass
class BackgroundWriter:
    lab: LabCluster
    prefix: str = "/writer/"
    max_writes: int = 20_000
    max_seconds: float = 300.0
    acked: list[str] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    fail_durations: list[float] = field(default_factory=list)
    crashed: BaseException | None = None  # what ended the writer early, if anything
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> BackgroundWriter:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        """Stop the writer and check how it ended: a writer that crashed or never stops
        fails the test instead of leaving its figures silently short."""
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the writer did not stop within 30 s"
        if self.crashed is not None:
            raise AssertionError(f"the writer crashed: {self.crashed!r}") from self.crashed

    def wait_acked(self, count: int, timeout: float = 30.0) -> None:
        """Block until `count` more writes are acknowledged (so a fault lands mid-stream)."""
        target = len(self.acked) + count

        def acked() -> bool:
            assert self._thread is not None and self._thread.is_alive(), \
                f"writer stopped: {self.crashed!r}"
            return len(self.acked) >= target

        poll(acked, timeout, f"writer past {target} acks (stalled?)", interval=0.01)

    def _run(self) -> None:
        try:
            self._write()
        except BaseException as exc:  # reported by __exit__ and wait_acked
            self.crashed = exc

    def _write(self) -> None:
        cluster = cluster_of(self.lab)
        deadline = time.monotonic() + self.max_seconds
        client = cluster.admin_client(timeout=2.0)
        try:
            for index in range(self.max_writes):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                key = f"{self.prefix}{index:06d}"
                started = time.monotonic()
                try:
                    client.put(key, b"x")
                    self.ack_times.append(time.monotonic())
                    self.acked.append(key)
                except DcsctlError as exc:
                    self.fail_durations.append(time.monotonic() - started)
                    # A timed-out write may still have been committed: it is "unknown",
                    # never counted as lost or as acknowledged.
                    self.failed.append(f"{key}: {exc.message}")
                    # Like a real client, reconnect with the trust currently published
                    # (a CA rotation changes it).
                    client.close()
                    client = cluster.admin_client(timeout=2.0)
                time.sleep(0.005)  # pacing: ~150 writes/s, like etcdctl check perf's s load
        finally:
            client.close()
