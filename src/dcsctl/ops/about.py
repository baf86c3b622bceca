"""`dcsctl --version`: dcsctl's own version and the etcd a lab cluster would run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version

from dcsctl.errors import EnvironmentProblem
from dcsctl.etcd import binaries


@dataclass(frozen=True)
class About:
    dcsctl: str
    etcd: str  # "etcd 3.7.4 (/path/to/etcd)", or "etcd: none found (why)"


def about(environ: Mapping[str, str]) -> About:
    """etcd.bin_dir unset: what DCSCTL_ETCD_BIN_DIR, PATH and dcsctl's own bin dir give."""
    try:
        found = binaries.find(None, environ)
        etcd = f"etcd {found.version} ({found.etcd})"
    except EnvironmentProblem as exc:
        etcd = f"etcd: none found ({exc.message})"
    return About(version("dcsctl"), etcd)
