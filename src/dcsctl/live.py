"""The live view of `dcsctl status --watch`: one rich renderable per refresh.

Rates (raft index per second) come from the previous refresh; everything else is the
ClusterView as `status` reads it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from dcsctl.etcd.model import hex_id
from dcsctl.report import human_bytes
from dcsctl.report.cluster import status_summary

if TYPE_CHECKING:
    from dcsctl.ops.status import ClusterView


@dataclass(frozen=True)
class Sample:
    view: ClusterView
    at: float  # monotonic seconds
    wall: dt.datetime


def _quota_cell(size: int, quota: int) -> Text:
    share = size / quota if quota else 0.0
    style = "red bold" if share >= 0.8 else "yellow" if share >= 0.5 else ""
    return Text(f"{human_bytes(size)} ({share:.0%})", style=style)


def _latency_cell(seconds: float, healthy: bool) -> Text:
    millis = seconds * 1000
    style = "red" if not healthy else "yellow" if millis >= 100 else ""
    return Text(f"{millis:.1f} ms", style=style)


def frame(current: Sample, previous: Sample | None, interval: float) -> RenderableType:
    view = current.view
    summary = status_summary(view)
    versions = sorted({m.status.version for m in view.members if m.status is not None})
    heading = Text.assemble(
        (f"cluster {view.name} ({view.cluster_id or 'id unknown'})  ", "bold"),
        (summary, "green" if view.healthy else "red bold"),
        f"\netcd {', '.join(versions) or '?'}, db quota {human_bytes(view.db_quota)}; "
        f"{current.wall:%H:%M:%S} UTC, every {interval:g} s, Ctrl-C to quit",
    )
    before = ({m.name: m for m in previous.view.members} if previous else {})
    elapsed = current.at - previous.at if previous else 0.0
    # Fits an 80-column terminal: one space between columns, only ERROR wraps.
    table = Table(box=box.SIMPLE_HEAD, expand=False, padding=(0, 1, 0, 0), pad_edge=False)
    for header in ("MEMBER", "HEALTH", "ROLE", "TERM", "INDEX", "INDEX/S", "LAG",
                   "DB (QUOTA)", "LATENCY", "ERROR"):
        table.add_column(header, justify="right" if header in {
            "TERM", "INDEX", "INDEX/S", "LAG", "LATENCY"} else "left",
            no_wrap=header != "ERROR", overflow="fold")
    for member in view.members:
        health = Text("healthy", "green") if member.health.healthy else Text("UNHEALTHY",
                                                                             "red bold")
        state = member.status
        if state is None:
            table.add_row(member.name, health, "-", "-", "-", "-", "-", "-",
                          _latency_cell(member.health.took_s, member.health.healthy),
                          member.error or member.health.error)
            continue
        role = ("leader" if state.is_leader else "learner" if state.is_learner
                else "follower")
        old = before.get(member.name)
        rate = "-"
        if old is not None and old.status is not None and elapsed > 0:
            rate = f"{(state.raft_index - old.status.raft_index) / elapsed:.1f}"
        table.add_row(
            member.name, health, Text(role, "bold" if state.is_leader else ""),
            str(state.raft_term), str(state.raft_index), rate,
            str(state.raft_index - state.raft_applied_index),
            _quota_cell(state.db_size, view.db_quota),
            _latency_cell(member.health.took_s, member.health.healthy),
            ", ".join(state.errors) or member.health.error,
        )
    parts: list[RenderableType] = [heading, table]
    for alarm in view.alarms:
        parts.append(Text(f"ALARM {alarm.kind} on member {hex_id(alarm.member_id)}",
                          "red bold"))
    for item in view.advisories:
        advisory = item.advisory
        parts.append(Text(f"advisory {advisory.ident} (etcd {item.version}: "
                          f"{', '.join(item.members)}): {advisory.problem}; fixed in "
                          f"{advisory.fixed_text()}", "yellow"))
    for problem in view.problems:
        parts.append(Text(f"problem: {problem}", "red"))
    return Group(*parts)
