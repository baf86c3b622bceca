"""SSH clusters for tests: real sshd servers on loopback (tests/ssh/sshd.py), one per
host, each host a directory tree of its own, dcsctl's SSH target against them; every lab
and cluster made is stopped and destroyed when the test ends. A pytest plugin (the root
conftest loads it): its fixtures serve every suite, `any_cluster` among them."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ssh.sshd import SshLab, start_ssh_lab
from tests.support import pack_release, start_ticks
from tests.support.lab import VENV_BIN, LabCluster, base_environ, second_octet


@pytest.fixture
def ssh_lab_factory(tmp_path: Path) -> Iterator[Callable[..., SshLab]]:
    """`make(hosts, **kw)` starts a lab under tmp_path; every lab made is stopped, pass or fail.

    Keyword arguments go to start_ssh_lab (port, user, extra_users).
    """
    made: list[SshLab] = []
    numbers = itertools.count()

    def make(hosts: Mapping[str, str], **kw: Any) -> SshLab:
        lab = start_ssh_lab(tmp_path / f"ssh-lab-{next(numbers)}", hosts, **kw)
        made.append(lab)
        return lab

    try:
        yield make
    finally:
        for lab in made:
            lab.stop()


# -- SSH clusters: dcsctl against real sshd hosts, each host a directory tree of its own --

_subnets = itertools.count(1)
_BASE = second_octet(150, 33)  # lab clusters stay below 150


@pytest.fixture(scope="session")
def release_tarball(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The project's etcd as a release tarball."""
    return pack_release(VENV_BIN, tmp_path_factory.mktemp("release"))


@dataclass
class SshCluster(LabCluster):
    """An SSH-target spec whose hosts are sshd servers on loopback, plus dcsctl's env."""

    lab: SshLab
    roots: dict[str, Path]  # member -> its host's "/" (remote_root)
    spare: dict[str, str]  # hosts up but not (yet) in the spec: alias -> address

    def rewrite(self, **changes: Any) -> None:
        self.spec_file.write_text(yaml.safe_dump({**self.document(), **changes}))

    def member_tls(self, member: str, kind: str) -> Path:
        files = {"cert": f"{member}.crt", "key": f"{member}.key", "ca": "ca.crt", "crl": "ca.crl"}
        return self.roots[member] / "etc" / "dcs" / "cert" / files[kind]


def _kill_remote_leftovers(roots: Mapping[str, Path]) -> None:
    """Last resort after a failed test: SIGKILL the etcd our remote pidfiles name (ours only)."""
    for root in roots.values():
        pidfile = root / "run" / "dcsctl-etcd.pid"
        try:
            pid, ticks = (int(field) for field in pidfile.read_text().split())
        except (OSError, ValueError):
            continue
        if start_ticks(pid) == ticks:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def ssh_cluster_factory(
    tmp_path: Path, ssh_lab_factory: Callable[..., SshLab], release_tarball: tuple[Path, str]
) -> Iterator[Callable[..., SshCluster]]:
    made: list[SshCluster] = []
    # Host roots live outside pytest's 0700 tmp dirs: etcd runs as the `etcd` user there.
    roots_dir = Path(tempfile.mkdtemp(prefix="dcsctl-ssh-hosts-"))
    roots_dir.chmod(0o755)

    def make(members: int = 3, spare: int = 0, **spec: Any) -> SshCluster:
        subnet = next(_subnets)
        name = f"s{subnet}"
        every = {f"{name}-{i}": f"127.{_BASE}.{subnet}.{10 + i}" for i in range(members + spare)}
        hosts = dict(list(every.items())[:members])
        lab = ssh_lab_factory(every)
        roots = {member: roots_dir / member for member in every}
        tarball, sha256 = release_tarball
        document: dict[str, Any] = {
            "name": name,
            "target": "ssh",
            "ssh": {"config_file": str(lab.ssh_config), "sudo": False},
            "install": {"method": "release", "tarball": str(tarball), "sha256": sha256},
            "service": {"manager": "process"},
            "members": [
                {"name": member, "address": address, "ssh": member,
                 "remote_root": str(roots[member])}
                for member, address in hosts.items()
            ],
            **spec,
        }
        spec_file = tmp_path / f"{name}.yaml"
        spec_file.write_text(yaml.safe_dump(document))
        home = tmp_path / "home"
        cluster = SshCluster(name, spec_file, home, base_environ(home), lab, roots,
                             {k: v for k, v in every.items() if k not in hosts})
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.destroy()
            _kill_remote_leftovers(cluster.roots)
        shutil.rmtree(roots_dir, ignore_errors=True)
