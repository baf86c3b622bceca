"""A TCP relay in front of the test store, to make faults happen at an exact point: after
N bytes of upload (then a hook runs, e.g. kill the store), or with every answer held back
(a store slower than any timeout). Bytes are relayed untouched (TLS passes through).
Threads are daemons; every socket is closed on exit."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tests.store.versitygw import ADDRESS, free_port


@dataclass
class Relay:
    upstream: int
    port: int = field(default_factory=free_port)
    after_bytes: int | None = None  # run `hook` once this many bytes went upstream
    hook: Callable[[], None] | None = None
    hold_answers: bool = False  # never relay the store's answers
    sent: int = 0
    fired: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sockets: list[socket.socket] = field(default_factory=list)
    _closed: bool = False

    def _count(self, size: int) -> None:
        with self._lock:
            self.sent += size
            due = (self.after_bytes is not None and self.sent >= self.after_bytes
                   and not self.fired.is_set())
            if due:
                self.fired.set()
        if due and self.hook is not None:
            self.hook()

    def _pipe(self, source: socket.socket, sink: socket.socket, upload: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                if upload:
                    self._count(len(data))
                elif self.hold_answers:
                    continue
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def _serve(self, listener: socket.socket) -> None:
        while not self._closed:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            try:
                server = socket.create_connection((ADDRESS, self.upstream), timeout=5)
                server.settimeout(None)
            except OSError:  # the store is gone: so is this connection
                client.close()
                continue
            self._sockets.append(server)
            for source, sink, upload in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pipe, args=(source, sink, upload),
                                 daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"https://{ADDRESS}:{self.port}"


@contextlib.contextmanager
def relay(upstream: int, **options: object) -> Iterator[Relay]:
    running = Relay(upstream, **options)  # type: ignore[arg-type]
    listener = socket.create_server((ADDRESS, running.port))
    thread = threading.Thread(target=running._serve, args=(listener,), daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running._closed = True
        listener.close()
        for sock in running._sockets:
            with contextlib.suppress(OSError):
                sock.close()
        thread.join(timeout=5)
