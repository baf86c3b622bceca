"""The use cases behind the quick paths of `dcsctl get` and `dcsctl put` (cli/quick.py):
find the client profile the full CLI recorded for a cluster, and hand one request to the
cluster's etcdctl (etcd/etcdctl.py). Start-up time is the point: imports here are the
cost of every quick run (tests/unit/test_quick_paths.py keeps the heavy ones out).
"""

from __future__ import annotations

import hashlib
import os

from dcsctl.etcd import etcdctl
from dcsctl.etcd.etcdctl import EtcdctlFailed as QuickFailed
from dcsctl.home import home_dir

TYPE_CHECKING = False  # typing itself costs milliseconds; mypy knows this name
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["QuickFailed", "get_json", "get_value", "profile", "put", "remember"]

# spec.lab_spec()'s name: the cluster a command without -f/--cluster works on
# (tests/unit/test_quick_paths.py keeps the two equal).
LAB_NAME = "dcs"
# Environment variables that change which etcdctl the full CLI finds (etcd/binaries.py).
BINARY_ENVIRON = ("DCSCTL_ETCD_BIN_DIR", "PATH")
PROFILE_VERSION = b"dcsctl client profile 1"
get_json = etcdctl.get_json
get_value = etcdctl.get_value
put = etcdctl.put


def spec_source(environ: Mapping[str, str], spec_file: str | Path | None,
                cluster: str | None) -> bytes | None:
    """The bytes the full CLI resolves the cluster from (cli/common.py: cluster_of)."""
    path = (str(spec_file) if spec_file is not None
            else os.path.join(home_dir(environ), cluster or LAB_NAME, "spec.yaml"))
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def profile_path(environ: Mapping[str, str], source: bytes) -> str:
    digest = hashlib.sha256(PROFILE_VERSION)
    for part in (source, *(environ.get(name, "").encode() for name in BINARY_ENVIRON)):
        digest.update(len(part).to_bytes(8, "big") + part)
    return os.path.join(home_dir(environ), ".cache", "clients", digest.hexdigest())


def remember(environ: Mapping[str, str], source: bytes | None,
             profile: etcdctl.EtcdctlProfile) -> None:
    """Record the profile the full CLI resolved, for the next quick run (0600: it says
    where the admin key is, though not the key)."""
    from pathlib import Path

    from dcsctl.files import atomic_write

    if source is not None:
        atomic_write(Path(profile_path(environ, source)), profile.dump(), mode=0o600)


def profile(environ: Mapping[str, str], spec_file: str | None, cluster: str | None
            ) -> etcdctl.EtcdctlProfile | None:
    """The recorded client profile of the cluster these options name, if it is usable."""
    source = spec_source(environ, spec_file, cluster)
    if source is None:
        return None
    try:
        with open(profile_path(environ, source), "rb") as handle:
            found = etcdctl.EtcdctlProfile.load(handle.read())
    except (OSError, ValueError):
        return None
    return found if found.usable() else None
