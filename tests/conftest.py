"""The suites' shared fixtures: lab clusters that are always cleaned up. The library they
use is tests/support (lab.py): import from there, never from a conftest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.lab import LabCluster, lab_clusters

# The SSH clusters' fixtures (ssh_lab_factory, release_tarball, ssh_cluster_factory).
pytest_plugins = ["tests.support.ssh_clusters"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """With parallel workers (`pytest -n N --dist loadgroup`, as CI runs), a module's tests
    run on one worker, in order: a module-scoped deployment is built once and its tests
    may build on each other. Every testbed test runs on the same worker: one testbed per
    run (a session fixture, fixed addresses)."""
    testbed = Path(__file__).resolve().parent / "testbed"
    for item in items:
        group = "testbed" if testbed in item.path.parents else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


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
