"""How an operator's shell reaches a cluster as admin: the exports of `dcsctl env`
(the guide's etcdctl commands then work verbatim) and the etcdctl profile the quick
paths of `get`/`put` remember."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dcsctl import render
from dcsctl.errors import DcsctlError, NotFound
from dcsctl.etcd.etcdctl import EtcdctlProfile
from dcsctl.ops import quick
from dcsctl.ops.cluster import Cluster


def client_profile(cluster: Cluster) -> EtcdctlProfile | None:
    """How the quick paths of `get`/`put` reach the cluster as admin with etcdctl
    (cli/quick.py); None where this machine has no etcdctl (they then stay full runs)."""
    directory = cluster.dir
    try:
        tool = cluster.binaries.etcdctl
    except DcsctlError:
        return None
    return EtcdctlProfile(
        str(tool), tuple(cluster.endpoints()),
        (str(directory.trust_bundle), str(directory.ca_cert)),
        str(directory.admin_cert), str(directory.admin_key),
    )


@dataclass(frozen=True)
class ShellEnvironment:
    variables: dict[str, str]
    path_prepend: str | None
    """A directory to put in front of PATH so `etcdctl` is the one dcsctl uses."""


def etcdctl_env(cluster: Cluster) -> ShellEnvironment:
    """Exports after which the guide's own etcdctl commands work verbatim, as admin."""
    directory = cluster.dir
    if directory.admin() is None:
        raise NotFound(
            f"cluster {cluster.spec.name!r} has no admin certificate yet",
            fix="run `dcsctl up` first",
        )
    found = cluster.binaries  # the etcdctl the exports put on PATH (or find there)
    variables = render.etcdctl_environment(
        cluster.spec, ca_cert=directory.ca_cert, cert=directory.admin_cert,
        key=directory.admin_key, etcdctl=found.version,
    )
    bin_dir = str(found.bin_dir)
    on_path = bin_dir in cluster.context.environ.get("PATH", "").split(os.pathsep)
    return ShellEnvironment(variables, None if on_path else bin_dir)


def remember_client(cluster: Cluster, spec_file: Path | None, name: str | None) -> None:
    """Record how the quick paths of `get`/`put` reach this cluster, resolved as the CLI
    resolved it (`-f FILE`, `--cluster NAME`, the built-in lab); nothing where this
    machine has no etcdctl. OSError: the cache could not be written."""
    profile = client_profile(cluster)
    if profile is None:
        return
    environ = cluster.context.environ
    quick.remember(environ, quick.spec_source(environ, spec_file, name), profile)
