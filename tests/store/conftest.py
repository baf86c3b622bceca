"""Fixtures of the store tests: a real versitygw on loopback (tests/store/versitygw.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.versitygw import Gateway, versitygw


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    with versitygw(tmp_path) as running:
        yield running
