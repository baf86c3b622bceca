"""One member on its SSH host, and a file it must hold: the values every part of the SSH
target passes around (files, install, checks, init systems)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from dcsctl import render
from dcsctl.hosts.protocol import Host
from dcsctl.spec import ClusterSpec, Member


@dataclass(frozen=True)
class Place:
    """One member on its host: what `push` and `remove` need to know."""

    spec: ClusterSpec
    member: Member
    host: Host
    layout: render.MemberLayout  # on the host
    paths: render.HostPaths
    staged: render.MemberLayout  # on the control machine, where dcsctl issued the files

    @property
    def owner(self) -> str:
        user = self.spec.service.user
        return f"{user}:{user}"


@dataclass(frozen=True)
class DesiredFile:
    path: PurePath
    content: bytes | None  # None: not issued yet (a plan before the first `up`)
    mode: int
    owner: str | None
    secret: bool = False  # a plan never shows its content
    # etcd reads it only when it starts (its settings, a unit): a running member must
    # restart to take a change; certificates and the CRL it re-reads on its own.
    read_at_start: bool = False


