"""The local machine as a Host: argv lists only, files written atomically."""

from __future__ import annotations

import errno
import re
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path, PurePath

from dcsctl.files import atomic_write
from dcsctl.hosts.protocol import Result


class LocalHost:
    name = "localhost"

    def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float = 60.0
    ) -> Result:
        completed = subprocess.run(
            list(argv), input=stdin, capture_output=True, timeout=timeout, check=False
        )
        return Result.of(argv, completed)

    def write(
        self, path: PurePath, content: bytes, mode: int, owner: str | None = None
    ) -> bool:
        # The lab runs everything as the invoking user: there is no owner to change to.
        return atomic_write(Path(path), content, mode)

    def read(self, path: PurePath) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None

    def port_busy(self, address: str, port: int) -> str | None:
        """None if address:port can be listened on, else who holds it (as far as we can tell)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:
                    return f"address {address} is not configured on this machine"
                if exc.errno != errno.EADDRINUSE:
                    return str(exc)
            else:
                return None
        return self._listener_name(address, port) or "another process"

    def _listener_name(self, address: str, port: int) -> str | None:
        if shutil.which("ss") is None:
            return None
        result = self.run(["ss", "-Hltnp", f"sport = :{port}"], timeout=5)
        holders = {f"{address}:{port}", f"0.0.0.0:{port}", f"*:{port}", f"[::]:{port}"}
        for line in result.stdout.splitlines():
            fields = line.split()
            if len(fields) > 3 and fields[3] in holders:
                match = re.search(r'users:\(\("([^"]+)",pid=(\d+)', line)
                if match:
                    return f"{match.group(1)} (pid {match.group(2)})"
        return None
