"""A dcsctl deployment on the testbed, as the testbed's tests and tools share it: the
spec `dcsctl init --target ssh` writes with the testbed's identity added, dcsctl run on the
control side, and the waits on its health. A plain module (the fixtures that build on it
live in tests/testbed/conftest.py; nothing imports a conftest)."""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dcsctl.wait import wait_until
from tests.support.lab import VENV_BIN, base_environ
from tests.testbed.bed import Testbed

_deployments = itertools.count()


@dataclass
class Deployment:
    """A cluster spec for the testbed and dcsctl's environment on the control side."""

    bed: Testbed
    spec_file: Path
    home: Path
    tmp: Path  # short: ssh master sockets live here, and a socket path fits 108 bytes

    @property
    def environ(self) -> dict[str, str]:
        environ = base_environ(self.home)
        environ["TMPDIR"] = str(self.tmp)  # ssh master sockets of this deployment only
        if mirror := self.bed.release_mirror():
            environ |= mirror.environ()  # the release data of the mirror's builds
        return environ

    def dcsctl(self, *argv: str, check: bool = True, timeout: float = 180
               ) -> subprocess.CompletedProcess[str]:
        return self.bed.run([str(VENV_BIN / "dcsctl"), *argv, "-f", str(self.spec_file)],
                            env=self.environ, check=check, timeout=timeout)

    def agent(self, *argv: str, timeout: float = 60) -> object:
        """tests/testbed/agent.py on the control side; its JSON answer."""
        result = self.bed.run([str(VENV_BIN / "python"), "-m", "tests.testbed.agent",
                               str(self.spec_file), *argv], env=self.environ, timeout=timeout)
        return json.loads(result.stdout)

    def writer(self, prefix: str, count: int, max_seconds: float, interval: float = 0.0
               ) -> subprocess.Popen[str]:
        """A bounded sequential writer (at most one put per `interval` s); prints
        `ack KEY` / `fail KEY` lines."""
        self.bed.net.check_isolation(self.bed.all_hosts())
        return subprocess.Popen(
            ["ip", "netns", "exec", self.bed.net.control_ns, str(VENV_BIN / "python"), "-m",
             "tests.testbed.agent", str(self.spec_file), "write", prefix, str(count),
             str(max_seconds), str(interval)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.environ,
            cwd=str(VENV_BIN.parent.parent))

    def leader(self) -> str | None:
        """The leader as `dcsctl status` reports it (None: no member knows one)."""
        view = json.loads(self.dcsctl("status", "--json", check=False).stdout)
        leader = view.get("leader")
        return None if leader is None else str(leader)


def make_deployment(bed: Testbed, workdir: Path) -> Deployment:
    """The spec `dcsctl init --target ssh` writes (the guide's hosts, install: release of
    the recommended etcd, service: systemd) with only the testbed's SSH identity,
    known_hosts and release mirror added."""
    home = workdir / "home"
    tmp = bed.dir / "t" / str(next(_deployments))  # removed with the testbed
    tmp.mkdir(parents=True)
    spec_file = workdir / "spec.yaml"
    spec_file.write_text(bed.spec())
    return Deployment(bed, spec_file, home, tmp)


@contextmanager
def guide_cluster_on(bed: Testbed, workdir: Path) -> Iterator[Deployment]:
    """The guide's cluster up on the testbed's hosts; after it, every host healed and
    running again (whatever a fault left) and the cluster destroyed."""
    deployment = make_deployment(bed, workdir)
    deployment.dcsctl("up")
    try:
        yield deployment
    finally:
        for host in bed.hosts():
            bed.net.heal(host)
            if bed.init_pid(host) is None:
                bed.boot(host)
        deployment.dcsctl("destroy", "--yes", check=False)


def status_of(deployment: Deployment) -> dict[str, object]:
    result = deployment.dcsctl("status", "--json", check=False, timeout=60)
    view = json.loads(result.stdout)
    assert isinstance(view, dict)
    return view


def wait_healthy(deployment: Deployment, timeout: float = 90) -> dict[str, object]:
    """`dcsctl status` says healthy (every member, auth on), within `timeout`."""
    seen: list[object] = [None]

    def healthy() -> dict[str, object] | None:
        view = status_of(deployment)
        seen[0] = view.get("problems")
        return view if view.get("healthy") else None

    return wait_until(healthy, timeout=timeout, what="the cluster did not become healthy",
                      last_error=lambda: str(seen[0]))


def hashes_equal(deployment: Deployment) -> bool:
    hashes = deployment.agent("hashes")
    assert isinstance(hashes, dict) and len(hashes) == 3
    return len(set(hashes.values())) == 1
