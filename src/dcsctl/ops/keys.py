"""`put`, `get`, `env`, `logs`: small things an operator does by hand."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dcsctl import render
from dcsctl.errors import DcsctlError, NotFound
from dcsctl.etcd.etcdctl import EtcdctlProfile
from dcsctl.etcd.model import KeyValue
from dcsctl.ops import quick
from dcsctl.ops.context import Cluster


def put(cluster: Cluster, key: str, value: bytes) -> int:
    with cluster.admin_client() as client:
        return client.put(key, value)


def get(cluster: Cluster, key: str) -> KeyValue:
    with cluster.admin_client() as client:
        found = client.get(key)
    if found is None:
        raise NotFound(f"key {key!r} does not exist", fix="check the key name (keys are exact)")
    return found


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


def logs(cluster: Cluster, member: str, lines: int) -> list[str]:
    try:
        cluster.spec.member(member)
    except KeyError as exc:
        names = ", ".join(m.name for m in cluster.spec.members)
        raise NotFound(f"no member {member!r} in cluster {cluster.spec.name!r}",
                       fix=f"use one of: {names}") from exc
    return cluster.service(member).log_tail(lines)


def remember_client(cluster: Cluster, spec_file: Path | None, name: str | None) -> None:
    """Record how the quick paths of `get`/`put` reach this cluster, resolved as the CLI
    resolved it (`-f FILE`, `--cluster NAME`, the built-in lab); nothing where this
    machine has no etcdctl. OSError: the cache could not be written."""
    profile = client_profile(cluster)
    if profile is None:
        return
    environ = cluster.context.environ
    quick.remember(environ, quick.spec_source(environ, spec_file, name), profile)
