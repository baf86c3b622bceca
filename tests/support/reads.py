"""How often a command reads a cluster's record (record.json): the CLI runs in-process in
the tests, so counting `ClusterDir.record` calls counts one command's reads. A command
reads the record once and hands it down."""

from __future__ import annotations

import pytest

from dcsctl.state import ClusterDir, ClusterRecord


class RecordReads:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = ClusterDir.record

        def counted(directory: ClusterDir) -> ClusterRecord:
            self.count += 1
            return original(directory)

        monkeypatch.setattr(ClusterDir, "record", counted)

    def take(self) -> int:
        """The reads since the last take."""
        count, self.count = self.count, 0
        return count
