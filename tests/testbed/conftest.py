"""The testbed for pytest: one per session (three bookworm hosts), always torn down.

Every test here carries the `testbed` marker (`pytest -m testbed` runs them alone). The
tests run dcsctl the way an operator does: the real CLI, on the control side of the
testbed's network, against hosts booted from a real Debian root filesystem. Fixtures only:
what the tests share besides them is in tests/testbed/deployment.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dcsctl.etcd.versions import NEWEST
from tests.testbed.bed import Testbed
from tests.testbed.deployment import Deployment, guide_cluster_on

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.testbed)


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    """Three hosts dcs-00..02 (bookworm) at 192.168.56.10..12; down at the end, pass or fail,
    and nothing of it left on the machine."""
    if os.geteuid() != 0:
        pytest.skip("the testbed needs root (namespaces, mounts, containers)")
    # Not the prefix of a developer's own `scripts/testbed up`; two test runs at once (two
    # checkouts) each set their own DCSCTL_TESTBED_PREFIX.
    bed = Testbed(prefix=os.environ.get("DCSCTL_TESTBED_PREFIX", "dcstbt"))
    try:
        bed.up(hosts=3, suite="bookworm")
        # the hosts' etcd comes from a release mirror, as at a site without internet
        bed.serve_releases(sorted(NEWEST.values()))
        yield bed
    finally:
        bed.down()
    left = bed.leftovers()
    assert not left, f"testbed teardown left: {left}"


@pytest.fixture(scope="module")
def cluster(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Deployment]:
    """The guide's cluster, up on the testbed's three hosts; destroyed after the module."""
    with guide_cluster_on(testbed, tmp_path_factory.mktemp("testbed-cluster")) as deployment:
        yield deployment
