"""The suites' shared fixtures: lab clusters that are always cleaned up. The library they
use is tests/support (lab.py): import from there, never from a conftest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.lab import LabCluster, lab_clusters


@pytest.fixture
def lab_factory(tmp_path: Path) -> Iterator[Callable[..., LabCluster]]:
    with lab_clusters(tmp_path) as make:
        yield make


@pytest.fixture(scope="module")
def running_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    """One 3-member cluster, up, shared by a module's read-only tests."""
    with lab_clusters(tmp_path_factory.mktemp("shared-lab")) as make:
        cluster = make()
        cluster.ok("up")
        yield cluster


@pytest.fixture
def lab(lab_factory: Callable[..., LabCluster]) -> LabCluster:
    """A 3-member lab cluster spec (not yet up)."""
    return lab_factory()
