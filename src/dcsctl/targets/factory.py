"""The one place that knows which kinds of target exist and picks one from the spec.

A new kind of place for members (a local systemd host, a container) is a function that
builds a `targets.protocol.Target` from its parts, a value in `spec.Target`, and one entry
in `_KINDS`.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dcsctl.errors import DcsctlError
from dcsctl.etcd.binaries import Binaries
from dcsctl.hosts.protocol import Host
from dcsctl.services.protocol import Service
from dcsctl.spec import ClusterSpec, PatroniNode
from dcsctl.spec import Target as TargetKind
from dcsctl.state import ClusterDir
from dcsctl.targets.protocol import Target


@dataclass(frozen=True)
class ControlMachine:
    """What a target may need from the control machine."""

    directory: ClusterDir
    binaries: Callable[[], Binaries]  # the etcd found on this machine, found once
    environ: Mapping[str, str]
    release_cache: Path


# Each kind's module is imported when a spec names it: a lab command never loads the
# SSH adapters (start-up time of every dcsctl run).
def _lab(spec: ClusterSpec, control: ControlMachine) -> Target:
    from dcsctl.targets.lab import lab_target

    return lab_target(spec, control.directory, control.binaries, control.environ)


def _ssh(spec: ClusterSpec, control: ControlMachine) -> Target:
    from dcsctl.targets.ssh.target import ssh_target

    return ssh_target(spec, control.directory, control.release_cache, control.environ)


_KINDS: dict[TargetKind, Callable[[ClusterSpec, ControlMachine], Target]] = {
    TargetKind.LAB: _lab,
    TargetKind.SSH: _ssh,
}


def target_for(spec: ClusterSpec, control: ControlMachine) -> Target:
    return _KINDS[spec.target](spec, control)


class ClosableHost(Host, Protocol):
    def close(self) -> None:
        """End the shared connection to the host."""
        ...


class LocalProcess(Service, Protocol):
    """A member that is a process of this machine, which a fault test may signal."""

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None: ...


def local_process(target: Target, member: str) -> LocalProcess:
    """A lab member's process (fault tests kill it directly)."""
    from dcsctl.targets.lab import LabMembers

    if not isinstance(target.placement, LabMembers):
        raise DcsctlError(f"{member} is not a process of this machine",
                          fix="only lab members can be signalled directly")
    return target.placement.process(member)


def database_host(spec: ClusterSpec, node: PatroniNode) -> ClosableHost:
    """A Patroni node's host, reached over SSH with the cluster's `ssh:` settings (its
    etcd members may run anywhere: the lab, or SSH hosts)."""
    from dcsctl.hosts.ssh import Destination, SshHost, SshOptions, control_dir

    settings = spec.ssh
    options = SshOptions(
        user=settings.user, port=settings.port, identity_file=settings.identity_file,
        known_hosts_file=settings.known_hosts_file, config_file=settings.config_file,
        strict_host_key_checking=settings.strict_host_key_checking,
        connect_timeout_s=settings.connect_timeout_s,
    )
    destination = Destination.parse(node.ssh or str(node.address))
    return SshHost(node.name, destination, options, control_dir(), sudo=settings.sudo)
