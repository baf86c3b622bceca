"""`dcsctl logs`: the tail of one member's log, wherever its service writes it."""

from __future__ import annotations

from dcsctl.ops.cluster import Cluster


def tail(cluster: Cluster, member: str, lines: int) -> list[str]:
    return cluster.service(cluster.member(member).name).log_tail(lines)
