"""How the Patroni commands look: scopes, a node's bundle, nodes' status, the doctor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcsctl.report import Listing, Output, Verbatim

if TYPE_CHECKING:
    from dcsctl.ops.patroni import Bundle, ScopeChange, ScopeView
    from dcsctl.ops.patroni_deploy import ScopeRemoved
    from dcsctl.ops.patroni_status import NodeStatus
    from dcsctl.targets.protocol import Check


def added_output(result: ScopeChange) -> Output:
    done = ", ".join(result.changes) or "unchanged"
    return Output((f"scope {result.scope.name}: user {result.scope.user}, prefix "
                   f"{result.scope.prefix} — {done}",))


def removed_output(scope: str, result: ScopeRemoved) -> Output:
    return Output((f"removed {', '.join(result.changes) or 'nothing left in etcd'} for scope "
                   f"{scope}" + (f"; bundle removed from {', '.join(result.taken_off)}"
                                 if result.taken_off else ""),))


SCOPES: Listing[ScopeView] = Listing(
    (("SCOPE", lambda v: v.scope.name), ("PREFIX", lambda v: v.scope.prefix),
     ("ETCD USER", lambda v: v.user or v.user_note), ("LEADER", lambda v: v.leader or "-"),
     ("MEMBERS", lambda v: ", ".join(v.members) or "-")),
    lambda v: {"scope": v.scope.name, "namespace": v.scope.namespace,
               "prefix": v.scope.prefix, "user": v.user, "leader": v.leader,
               "members": list(v.members)})


def scopes_output(views: list[ScopeView]) -> Output:
    return Output((SCOPES.table(views),), SCOPES.records(views))


def config_output(bundle: Bundle, node: str, *, show_password: bool) -> Output:
    """patroni.yml's `etcd3:` section on stdout; where the bundle is, on stderr. Terminals
    are scrolled back, logged and screen-shared: the password only when asked for (the
    bundle's etcd3.yml, 0600, always has it)."""
    return Output((Verbatim(bundle.section if show_password else bundle.masked_section),),
                  notes=(f"bundle (ca.crt, {node}.crt, {node}.key 0600, etcd3.yml 0600) in "
                         f"{bundle.directory}", *(f"advice: {line}" for line in bundle.advice)))


NODES: Listing[NodeStatus] = Listing(
    (("SCOPE", lambda n: n.scope), ("NODE", lambda n: n.name),
     ("REACHABLE", lambda n: "yes" if n.reachable else f"no ({n.problem})"),
     ("PATRONI", lambda n: n.version or "-"), ("ROLE", lambda n: n.role or "-"),
     ("DCS SEEN", lambda n: f"{n.dcs_last_seen_age_s} s ago"
      if n.dcs_last_seen_age_s is not None else "-"),
     ("CERT DEPLOYED", lambda n: n.serial_deployed or "-"),
     ("CERT ISSUED", lambda n: (n.serial_issued or "-") + (" (drift)" if n.drift else "")),
     ("DAYS LEFT", lambda n: f"{n.days_left:g}" if n.days_left is not None else "-")),
    lambda n: {"scope": n.scope, "name": n.name, "address": n.address,
               "reachable": n.reachable, "problem": n.problem or None, "version": n.version,
               "role": n.role, "state": n.state, "dcs_last_seen_age_s": n.dcs_last_seen_age_s,
               "serial_deployed": n.serial_deployed, "serial_issued": n.serial_issued,
               "drift": n.drift, "days_left": n.days_left})


def status_output(nodes: list[NodeStatus]) -> Output:
    return Output((NODES.table(nodes),), {"nodes": NODES.records(nodes)})


DOCTOR: Listing[Check] = Listing(
    (("NODE", lambda c: c.member), ("CHECK", lambda c: c.name),
     ("VERDICT", lambda c: c.verdict.upper()), ("DETAIL", lambda c: c.detail)),
    lambda c: {"node": c.member, "check": c.name, "verdict": str(c.verdict),
               "detail": c.detail, "fix": c.fix or None})


def doctor_output(scope: str, checks: list[Check]) -> Output:
    return Output((DOCTOR.table(checks),), {"scope": scope, "checks": DOCTOR.records(checks)})
