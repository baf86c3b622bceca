"""`dcsctl preflight`: can the members' hosts run an etcd member? Each check gives a
verdict; the target knows which checks its kind of host needs (SSH hosts: reachable,
privileges, OS and init system, ports, clock skew, an fsync probe, the etcd there;
lab: the etcd found here and the ports)."""

from __future__ import annotations

from dcsctl.ops.cluster import Cluster
from dcsctl.targets.protocol import Check, PreflightReport, Verdict

__all__ = ["Check", "PreflightReport", "Verdict", "preflight"]


def preflight(cluster: Cluster) -> PreflightReport:
    return cluster.target.checks.preflight(list(cluster.spec.members), thorough=True)
