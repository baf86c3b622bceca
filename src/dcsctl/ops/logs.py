"""`dcsctl logs`: the tail of one member's log, wherever its service writes it."""

from __future__ import annotations

from dcsctl.errors import NotFound
from dcsctl.ops.cluster import Cluster


def tail(cluster: Cluster, member: str, lines: int) -> list[str]:
    try:
        cluster.spec.member(member)
    except KeyError as exc:
        names = ", ".join(m.name for m in cluster.spec.members)
        raise NotFound(f"no member {member!r} in cluster {cluster.spec.name!r}",
                       fix=f"use one of: {names}") from exc
    return cluster.service(member).log_tail(lines)
