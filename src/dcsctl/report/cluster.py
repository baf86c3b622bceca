"""How the cluster's lifecycle and everyday commands look: status, up, plan, preflight,
down, destroy, env, get, logs."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from rich.table import Table

from dcsctl.etcd.model import hex_id
from dcsctl.report import Item, Output, Verbatim, human_bytes, table

if TYPE_CHECKING:
    # Only named in annotations: importing the use cases here would make every command
    # load deployment, certificates and the rest (the CLI imports a command's own only).
    from dcsctl.etcd.model import KeyValue
    from dcsctl.ops.lifecycle import Destroyed, DownResult, UpResult
    from dcsctl.ops.plan import Plan
    from dcsctl.ops.shell import ShellEnvironment
    from dcsctl.ops.status import ClusterView, MemberView
    from dcsctl.ops.user_spec import NewSpec
    from dcsctl.targets.protocol import PreflightReport


def _table(title: str, headers: list[str]) -> Table:
    return table(headers, (), title)


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
    if plan.patroni_first:
        lines.append(f"patroni  {plan.patroni_first}")
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
        "patroni_first": plan.patroni_first,
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


def status_output(view: ClusterView) -> Output:
    """`dcsctl status`: the tables, the problems found, a one-line verdict."""
    return Output((*status_tables(view), *(f"problem: {p}" for p in view.problems),
                   status_summary(view)), status_json(view))


def up_output(result: UpResult, view: ClusterView | None) -> Output:
    """`dcsctl up`: the phases for scripts; for people, the cluster's status afterwards
    (`view`, None when only JSON is wanted)."""
    text: tuple[Item, ...] = () if view is None else (*status_tables(view),
                                                      status_summary(view))
    return Output(text, up_json(result), () if result.changed else ("no changes",))


def plan_output(plan: Plan) -> Output:
    return Output(tuple(plan_text(plan)), plan_json(plan))


def preflight_output(report: PreflightReport) -> Output:
    return Output((preflight_table(report),), preflight_json(report))


def down_output(result: DownResult) -> Output:
    return Output((down_text(result),))


def destroy_output(result: Destroyed) -> Output:
    kept = f"\n{result.left_behind}" if result.left_behind else ""
    return Output((f"{down_text(result.down)}; removed {result.root}{kept}",))


def env_output(env: ShellEnvironment) -> Output:
    return Output((Verbatim(shell_exports(env) + "\n"),))


def get_output(found: KeyValue) -> Output:
    """A key's value as it is (etcdctl's `get --print-value-only`), or its record."""
    value = found.value.decode(errors="replace")
    return Output((Verbatim(value + "\n"),), {
        "key": found.key, "value": value, "create_revision": found.create_revision,
        "mod_revision": found.mod_revision, "version": found.version,
    })


def logs_output(tail: list[str]) -> Output:
    return Output((Verbatim("".join(line + "\n" for line in tail)),))


def init_output(made: NewSpec) -> Output:
    """The spec on stdout, or where it was written on stderr."""
    if made.written is None:
        return Output((Verbatim(made.text),))
    return Output((), notes=(f"wrote {made.written}",))
