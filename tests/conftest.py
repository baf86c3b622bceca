"""The suites' shared fixtures: lab clusters that are always cleaned up. The library they
use is tests/support (lab.py): import from there, never from a conftest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.lab import LabCluster, lab_clusters
from tests.support.reads import RecordReads

# The SSH clusters' fixtures (ssh_lab_factory, release_tarball, ssh_cluster_factory).
pytest_plugins = ["tests.support.ssh_clusters"]


TESTBED = "tests/testbed/"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The testbed's tests first: with parallel workers they are one unit of work (below),
    the longest, so one worker starts on it while the other takes everything else."""
    items.sort(key=lambda item: not item.nodeid.startswith(TESTBED))  # stable


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist (`pytest -n N`, as CI runs)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Parallel workers take a module at a time, its tests in order (a module-scoped
    deployment is built once; its tests may build on each other), and every testbed test
    on the same worker: one testbed per run (a session fixture, fixed addresses)."""
    from xdist.scheduler import LoadScopeScheduling

    class ModulesAndTheTestbed(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return TESTBED if nodeid.startswith(TESTBED) else nodeid.split("::", maxsplit=1)[0]

    return ModulesAndTheTestbed(config, log)


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


@pytest.fixture(params=["lab", "ssh"])
def any_cluster(request: pytest.FixtureRequest) -> LabCluster:
    """A 3-member cluster spec (not yet up) on each kind of target: lab processes here,
    and real sshd hosts on loopback through the SSH target. A test written against it
    runs on both (`ops/` is the same code for every target)."""
    if request.param == "lab":
        cluster: LabCluster = request.getfixturevalue("lab_factory")()
    else:
        cluster = request.getfixturevalue("ssh_cluster_factory")()
    return cluster


@pytest.fixture
def record_reads(monkeypatch: pytest.MonkeyPatch) -> RecordReads:
    """Counts reads of clusters' records by the in-process CLI (see tests/support/reads.py)."""
    return RecordReads(monkeypatch)
