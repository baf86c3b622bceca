"""What the tests and benchmarks repeat, once: a process's start time from /proc (to
signal only processes that are still ours), polling with a deadline (on dcsctl's own
wait_until), the Cluster object behind a lab or SSH test cluster, and etcd binaries packed
as a release tarball. Benchmarks import this module, not a conftest."""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from dcsctl.errors import ClusterUnhealthy
from dcsctl.ops.cluster import Cluster, Context
from dcsctl.spec import parse
from dcsctl.wait import wait_until

T = TypeVar("T")


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces and parentheses):
    [state, ppid, ..., starttime at index 19]; None once the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """When PID started (clock ticks since boot), or None once it is gone or a zombie."""
    fields = stat_fields(pid)
    if fields is None or fields[0] in {"Z", "X"}:
        return None
    return int(fields[19])


def is_gone(pid: int) -> bool:
    """The process has exited (a zombie counts: it only waits to be reaped)."""
    return start_ticks(pid) is None


def poll(check: Callable[[], T | None], timeout: float, what: str,
         interval: float = 0.05) -> T:
    """`check`'s first true value within `timeout` seconds; TimeoutError after."""
    try:
        return wait_until(check, timeout=timeout, what=what, interval=interval,
                          max_interval=interval)
    except ClusterUnhealthy as exc:
        raise TimeoutError(exc.message) from exc


def end_by_closing_stdin(process: subprocess.Popen[str], timeout: float) -> str:
    """End a sampler that runs until its stdin closes; SIGKILL it (our own child, by PID)
    if it is not gone within `timeout`. What it printed on stderr."""
    try:
        _, errors = process.communicate(input="", timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, errors = process.communicate(timeout=10)
    return errors


class HasSpecFile(Protocol):
    @property
    def environ(self) -> Mapping[str, str]: ...
    @property
    def spec_file(self) -> Path: ...


@dataclass(frozen=True)
class SpecFileIn:
    """A spec file and the environment to read it in (for callers without a test cluster)."""

    environ: Mapping[str, str]
    spec_file: Path


def cluster_of(lab: HasSpecFile) -> Cluster:
    """The dcsctl Cluster a test cluster's spec file describes, in its environment."""
    return Context(lab.environ).cluster(parse(lab.spec_file.read_text()))


def pack_release(bin_dir: Path, directory: Path) -> tuple[Path, str]:
    """etcd binaries packed the way etcd's own release tarballs are, and the sha256."""
    version = subprocess.run([str(bin_dir / "etcd"), "--version"], capture_output=True,
                             text=True, check=True).stdout.split()[2]
    top = f"etcd-v{version}-linux-amd64"
    tarball = directory / f"{top}.tar.gz"
    # compresslevel 1: a seventh of the CPU of the default 9 on ~90 MB of binaries, 6 % larger
    with tarfile.open(tarball, "w:gz", compresslevel=1) as archive:
        for tool in ("etcd", "etcdctl", "etcdutl"):
            # The files themselves: dcsctl's bin dir holds links to .tools.
            archive.add((bin_dir / tool).resolve(), f"{top}/{tool}")
    return tarball, hashlib.sha256(tarball.read_bytes()).hexdigest()
