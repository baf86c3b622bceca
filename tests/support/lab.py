"""Lab clusters for tests and benchmarks: the real CLI in-process, every etcd that
scripts/setup laid out, a loopback /24 per cluster, and clusters that are always cleaned
up. The shared library of the test suites (fixtures live in tests/conftest.py; nothing
imports a conftest)."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import signal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from dcsctl.cli import main
from dcsctl.etcd.versions import Version, advisories, unaccepted_risks
from tests.support import start_ticks

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
TOOLS = REPO / ".tools"


def etcd_builds() -> dict[Version, Path]:
    """Every etcd scripts/setup laid out: version -> its bin dir (.tools/etcd-<v>/bin)."""
    found = {}
    for bin_dir in sorted(TOOLS.glob("etcd-*/bin")):
        version = Version.parse(bin_dir.parent.name)
        if (bin_dir / "etcd").exists():
            found[version] = bin_dir
    return found


def etcd_bin_dir(version: Version) -> Path:
    """The bin dir of one etcd version, or a test failure that says how to get it."""
    found = etcd_builds()
    if version not in found:
        pytest.fail(f"etcd {version} is not in {TOOLS}: run scripts/setup")
    return found[version]


def debian_etcd(affected_by: str | None = None) -> Version:
    """The newest Debian-packaged etcd that setup extracted (3.5.30 today), or the newest
    one an advisory still affects (so a probe keeps a known-bad version to fail on, even
    once Debian ships the fix)."""
    debian = [v for v, d in etcd_builds().items() if (d / ".debian").exists()
              and (affected_by is None or any(a.ident == affected_by for a in advisories(v)))]
    if not debian:
        pytest.fail(f"no Debian etcd {affected_by or ''} in {TOOLS}: run scripts/setup")
    return max(debian)
def second_octet(first: int, slots: int) -> int:
    """A second octet of 127.X.0.0/16 for this test process, in [first, first + 3 * slots):
    the process ID picks the slot (two runs at once rarely meet), the parallel worker
    (pytest-xdist's gw0, gw1, gw2) the octet within it (workers of one run never meet)."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    return first + (os.getpid() % slots) * 3 + worker % 3


# Every test cluster gets its own loopback /24 so clusters never collide, within a run or
# with a developer's own `dcsctl up` on 127.0.0.10-12. SSH test hosts use 150 and above.
_subnets = itertools.count(1)
_BASE = second_octet(40, 35)


def risks_of(version: Version) -> list[str]:
    """What a spec must accept (etcd.accept_risks) to deploy `version`."""
    return [a.ident for a in unaccepted_risks(version, ())]


def loopback_subnet() -> str:
    """A loopback /24 ("127.B.S") no other test cluster of this run uses."""
    return f"127.{_BASE}.{next(_subnets)}"


def free_loopback_address() -> str:
    """A loopback address no other test cluster of this run uses."""
    return f"127.{_BASE}.{next(_subnets)}.10"


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> dict[str, object]:
        data = json.loads(self.out)
        assert isinstance(data, dict)
        return data

    def json_list(self) -> list[dict[str, object]]:
        data = json.loads(self.out)
        assert isinstance(data, list)
        return data


def run_cli(argv: list[str], environ: Mapping[str, str]) -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, environ, stdout=out, stderr=err)
    return CliResult(code, out.getvalue(), err.getvalue())


def lab_document(name: str, members: int, subnet: int) -> dict[str, object]:
    return {
        "name": name,
        "domain": "patroni.test",
        "members": [
            {"name": f"{name}-{i}", "address": f"127.{_BASE}.{subnet}.{10 + i}"}
            for i in range(members)
        ],
    }


@dataclass
class LabCluster:
    """A cluster spec on disk plus the environment to run dcsctl against it."""

    name: str
    spec_file: Path
    home: Path
    environ: dict[str, str]

    def dcsctl(self, *argv: str) -> CliResult:
        return run_cli([*argv, "-f", str(self.spec_file)], self.environ)

    def ok(self, *argv: str) -> CliResult:
        result = self.dcsctl(*argv)
        assert result.code == 0, f"dcsctl {' '.join(argv)} -> {result.code}\n{result.err}"
        return result

    @property
    def state(self) -> Path:
        return self.home / self.name

    def document(self) -> dict[str, object]:
        data = yaml.safe_load(self.spec_file.read_text())
        assert isinstance(data, dict)
        return data

    def destroy(self) -> None:
        """Test teardown: the cluster and its state go, whatever the test left behind."""
        if self.spec_file.exists():
            run_cli(["destroy", "--yes", "-f", str(self.spec_file)], self.environ)

    def addresses(self) -> list[str]:
        members = self.document()["members"]
        assert isinstance(members, list)
        return [str(m["address"]) for m in members]

    def names(self) -> list[str]:
        members = self.document()["members"]
        assert isinstance(members, list)
        return [str(m["name"]) for m in members]

    def member_tls(self, member: str, kind: str) -> Path:
        """A member's TLS file where its etcd reads it: "cert", "key", "ca" or "crl"."""
        files = {"cert": "member.crt", "key": "member.key", "ca": "ca.crt", "crl": "ca.crl"}
        return self.state / "members" / member / "tls" / files[kind]


def kill_leftovers(home: Path) -> None:
    """Last resort after a failed test: SIGKILL every etcd our pidfiles name (ours only)."""
    for pidfile in home.glob("*/members/*/etcd.pid"):
        try:
            record = json.loads(pidfile.read_text())
            pid, ticks = int(record["pid"]), int(record["start_ticks"])
        except (OSError, ValueError, KeyError):
            continue
        if start_ticks(pid) == ticks:
            os.kill(pid, signal.SIGKILL)


def base_environ(home: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ETCDCTL_", "DCSCTL_"))}
    environ["DCSCTL_HOME"] = str(home)
    environ["DCSCTL_ETCD_BIN_DIR"] = os.environ.get("DCSCTL_ETCD_BIN_DIR", str(VENV_BIN))
    return environ


@contextlib.contextmanager
def lab_clusters(workdir: Path) -> Iterator[Callable[..., LabCluster]]:
    """Make lab cluster specs under `workdir`; every one made is destroyed at exit, pass or fail."""
    home = workdir / "home"
    made: list[LabCluster] = []

    def make(members: int = 3, name: str | None = None,
             etcd: Version | None = None, accept_risks: bool = True) -> LabCluster:
        """A cluster spec; `etcd` picks a version from .tools (default: dcsctl's), and the
        spec accepts that version's advisories by name unless `accept_risks` is False."""
        subnet = next(_subnets)
        cluster_name = name or f"t{subnet}"
        spec_file = workdir / f"{cluster_name}-{subnet}.yaml"
        document = lab_document(cluster_name, members, subnet)
        if etcd is not None and accept_risks and (names := risks_of(etcd)):
            document["etcd"] = {"accept_risks": names}
        spec_file.write_text(yaml.safe_dump(document))
        environ = base_environ(home)
        if etcd is not None:
            environ["DCSCTL_ETCD_BIN_DIR"] = str(etcd_bin_dir(etcd))
        cluster = LabCluster(cluster_name, spec_file, home, environ)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.destroy()
        kill_leftovers(home)
