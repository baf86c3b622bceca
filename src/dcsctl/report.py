"""How results look: etcdctl-like tables for people, JSON for scripts, progress on stderr."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table

from dcsctl.errors import DcsctlError
from dcsctl.etcd.model import hex_id

if TYPE_CHECKING:
    # Only named in annotations: importing the use cases here would make every command
    # load deployment, certificates and the rest (the CLI imports a command's own only).
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

    from dcsctl.ops.lifecycle import DownResult, UpResult
    from dcsctl.ops.plan import Plan
    from dcsctl.ops.shell import ShellEnvironment
    from dcsctl.ops.status import ClusterView, MemberView
    from dcsctl.targets.protocol import PreflightReport
    from dcsctl.workflow import Phase, PhaseOutcome


def human_bytes(size: int) -> str:
    """Sizes as etcdctl prints them (decimal units: 20 kB, 84 MB)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}".replace(
                ".0 ", " "
            )
        value /= 1000
    raise AssertionError("unreachable")


def _table(title: str, headers: Sequence[str]) -> Table:
    table = Table(title=title, box=box.SQUARE, title_justify="left", title_style="bold")
    for header in headers:
        table.add_column(header, justify="right" if header.startswith(("IS ", "RAFT")) else "left")
    return table


def _member_row(member: MemberView) -> list[str]:
    info = member.info
    if info is None:
        return ["-", "unreachable", member.name, "-", member.endpoint, "-"]
    return [
        hex_id(info.id),
        "started" if info.started else "unstarted",
        info.name,
        ",".join(info.peer_urls),
        ",".join(info.client_urls),
        str(info.is_learner).lower(),
    ]


def status_tables(view: ClusterView) -> list[Table]:
    members = _table(
        f"cluster {view.name} ({view.cluster_id or 'id unknown'})",
        ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER", "PID"],
    )
    endpoints = _table(
        "endpoint status",
        ["ENDPOINT", "ID", "VERSION", "STORAGE VERSION", "DB SIZE", "IS LEADER",
         "IS LEARNER", "RAFT TERM", "RAFT INDEX", "RAFT APPLIED INDEX", "ERRORS"],
    )
    health = _table("endpoint health", ["ENDPOINT", "HEALTH", "TOOK", "ERROR"])
    for member in view.members:
        members.add_row(*_member_row(member), str(member.pid or "-"))
        state = member.status
        if state is None:
            endpoints.add_row(member.endpoint, "-", "-", "-", "-", "-", "-", "-", "-", "-",
                              member.error)
        else:
            endpoints.add_row(
                member.endpoint, hex_id(state.member_id), state.version,
                state.storage_version or "-",
                f"{human_bytes(state.db_size)} / {human_bytes(view.db_quota)}",
                str(state.is_leader).lower(), str(state.is_learner).lower(),
                str(state.raft_term), str(state.raft_index), str(state.raft_applied_index),
                ", ".join(state.errors),
            )
        took = member.health.took_s * 1000
        health.add_row(member.endpoint, str(member.health.healthy).lower(), f"{took:.3f}ms",
                       member.health.error)
    tables = [members, endpoints, health]
    if view.patroni:
        patroni = _table("patroni", ["SCOPE", "NAMESPACE", "LEADER", "MEMBERS", "ETCD USER"])
        for scope in view.patroni:
            patroni.add_row(scope.scope.name, scope.scope.namespace, scope.leader or "-",
                            ", ".join(scope.members) or "-",
                            scope.user_note)
        tables.append(patroni)
    if view.advisories:
        found = _table("advisories", ["VERSION", "MEMBERS", "ADVISORY", "IMPACT", "FIXED IN",
                                      "WHAT IT BREAKS"])
        for item in view.advisories:
            advisory = item.advisory
            found.add_row(item.version, ", ".join(item.members),
                          " / ".join((advisory.ident, *advisory.aliases)), str(advisory.impact),
                          advisory.fixed_text(), advisory.problem)
        tables.append(found)
    if view.alarms:
        alarms = _table("alarms", ["MEMBER", "ALARM"])
        for alarm in view.alarms:
            alarms.add_row(hex_id(alarm.member_id), alarm.kind)
        tables.append(alarms)
    return tables


def status_summary(view: ClusterView) -> str:
    healthy = sum(1 for m in view.members if m.health.healthy)
    verdict = "healthy" if view.healthy else "UNHEALTHY"
    leader = view.leader or "none"
    auth = {True: "on", False: "OFF", None: "unknown"}[view.auth_enabled]
    return (f"{verdict}: {healthy}/{len(view.members)} members healthy, leader {leader}, "
            f"auth {auth}")


def status_json(view: ClusterView) -> dict[str, Any]:
    return {
        "cluster": view.name,
        "cluster_id": view.cluster_id,
        "healthy": view.healthy,
        "leader": view.leader,
        "auth_enabled": view.auth_enabled,
        "db_quota_bytes": view.db_quota,
        "alarms": [{"member_id": hex_id(a.member_id), "alarm": a.kind} for a in view.alarms],
        "problems": list(view.problems),
        "advisories": [
            {"version": a.version, "members": list(a.members), "id": a.advisory.ident,
             "aliases": list(a.advisory.aliases), "impact": str(a.advisory.impact),
             "fixed_in": [str(v) for v in a.advisory.fixed_in], "problem": a.advisory.problem}
            for a in view.advisories
        ],
        "patroni": [
            {"scope": p.scope.name, "namespace": p.scope.namespace, "leader": p.leader,
             "members": list(p.members), "user": p.user}
            for p in view.patroni
        ],
        "members": [
            {
                "name": m.name,
                "endpoint": m.endpoint,
                "pid": m.pid,
                "id": hex_id(m.info.id) if m.info else None,
                "started": m.info.started if m.info else None,
                "is_learner": m.info.is_learner if m.info else None,
                "peer_urls": list(m.info.peer_urls) if m.info else [],
                "client_urls": list(m.info.client_urls) if m.info else [],
                "healthy": m.health.healthy,
                "took_seconds": round(m.health.took_s, 6),
                "error": m.health.error or m.error,
                "status": None if m.status is None else {
                    "version": m.status.version,
                    "storage_version": m.status.storage_version or None,
                    "downgrade_target": m.status.downgrade_target or None,
                    "db_size": m.status.db_size,
                    "db_size_in_use": m.status.db_size_in_use,
                    "is_leader": m.status.is_leader,
                    "raft_term": m.status.raft_term,
                    "raft_index": m.status.raft_index,
                    "raft_applied_index": m.status.raft_applied_index,
                    "errors": list(m.status.errors),
                },
            }
            for m in view.members
        ],
    }


def up_json(result: UpResult) -> dict[str, Any]:
    return {
        "cluster": result.cluster,
        "cluster_id": result.cluster_id,
        "changed": result.changed,
        "phases": [
            {"name": o.name, "changed": o.changed, "note": o.note, "seconds": round(o.seconds, 3)}
            for o in result.outcomes
        ],
        "warnings": list(result.warnings),
    }


def plan_text(plan: Plan) -> list[str]:
    """Per host, what `up` would change: `+` add, `~` change, `=` leave alone."""
    lines = [f"plan for cluster {plan.cluster}"]
    lines.append("pki (control machine): " + (
        f"+ issue {', '.join(plan.pki)}" if plan.pki else "= complete"))
    for host in plan.hosts:
        lines.append(f"{host.member} ({host.destination})")
        lines.append(f"  package  {host.install}")
        for change in host.files:
            mark = {"create": "+", "update": "~", "unchanged": "="}[change.action]
            lines.append(f"  file     {mark} {change.path}")
            lines += [f"             {line}" for line in change.diff]
        lines.append(f"  service  {host.service}")
    for node in plan.nodes:
        lines.append(f"patroni {node.scope}/{node.node} ({node.destination})")
        for path, action in node.files:
            mark = {"create": "+", "update": "~", "unchanged": "="}[action]
            lines.append(f"  file     {mark} {path}")
    lines.append("changes would be made: run `dcsctl up` to apply" if plan.changes
                 else "no changes")
    return lines


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "cluster": plan.cluster,
        "changes": plan.changes,
        "pki": list(plan.pki),
        "hosts": [
            {
                "member": h.member, "destination": h.destination, "install": h.install,
                "service": h.service,
                "files": [{"path": f.path, "action": f.action, "diff": list(f.diff)}
                          for f in h.files],
            }
            for h in plan.hosts
        ],
        "patroni_nodes": [
            {"scope": n.scope, "node": n.node, "destination": n.destination,
             "files": [{"path": path, "action": action} for path, action in n.files]}
            for n in plan.nodes
        ],
    }


def preflight_table(report: PreflightReport) -> Table:
    table = _table("preflight", ["MEMBER", "CHECK", "VERDICT", "DETAIL"])
    for check in report.checks:
        fix = f" — fix: {check.fix}" if check.fix and check.verdict == "fail" else ""
        table.add_row(check.member, check.name, check.verdict.upper(), check.detail + fix)
    return table


def preflight_json(report: PreflightReport) -> dict[str, Any]:
    return {
        "ok": not report.failed,
        "checks": [{"member": c.member, "check": c.name, "verdict": str(c.verdict),
                    "detail": c.detail} for c in report.checks],
    }


def down_text(result: DownResult, verb: str = "stopped") -> str:
    parts = []
    if result.stopped:
        parts.append(f"{verb} {', '.join(result.stopped)}")
    if result.already_stopped:
        parts.append(f"not running: {', '.join(result.already_stopped)}")
    return "; ".join(parts) or "nothing to do"


def shell_exports(env: ShellEnvironment) -> str:
    lines = [f"export {name}={shlex.quote(value)}" for name, value in env.variables.items()]
    if env.path_prepend:
        lines.append(f'export PATH={shlex.quote(env.path_prepend)}:"$PATH"')
    return "\n".join(lines)


def dump_json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False)


def error_lines(error: DcsctlError) -> list[str]:
    lines = [f"error: {error.message}"]
    lines += [f"  {detail}" for detail in error.details]
    if error.fix:
        lines.append(f"fix: {error.fix}")
    return lines


class ConsoleProgress:
    """Phase lines on stderr: `[pki] CA, member, admin and JWT keys — issued ...`."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._status: Any = None
        self._bar: tuple[RichProgress, TaskID] | None = None  # the bar and its one task

    def phase_started(self, phase: Phase) -> None:
        if self.console.is_terminal:
            self._status = self.console.status(f"[{phase.name}] {phase.summary} ...")
            self._status.start()

    def phase_finished(self, outcome: PhaseOutcome) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        mark = "[green]✓[/]" if outcome.changed else "[dim]=[/]"
        took = f" [dim]({outcome.seconds:.2f} s)[/]" if outcome.seconds >= 0.01 else ""
        self.console.print(
            f"{mark} [bold]\\[{outcome.name}][/] {outcome.summary} — {outcome.note}{took}",
            highlight=False,
        )

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def transfer(self, label: str, done: int, total: int | None) -> None:
        """A byte-count progress bar, shown only on a terminal."""
        if not self.console.is_terminal:
            return
        if self._bar is None:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), console=self.console, transient=True,
            )
            bar.start()
            self._bar = (bar, bar.add_task(label, total=total))
        bar, task = self._bar
        bar.update(task, completed=done, total=max(total or 0, done) or None)
        if total is not None and done >= total:
            bar.stop()
            self._bar = None
