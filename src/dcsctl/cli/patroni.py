"""Patroni: per-scope etcd identities and the patroni.yml `etcd3:` section."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dcsctl import report
from dcsctl.cli.common import (
    PATRONI,
    ClusterOption,
    JsonOption,
    SpecOption,
    YesOption,
    app,
    cluster_of,
    confirm,
    session_of,
)
from dcsctl.ops import patroni as patroni_ops

patroni_app = typer.Typer(help="Least-privilege etcd access for Patroni clusters.",
                          no_args_is_help=True)
app.add_typer(patroni_app, name="patroni", rich_help_panel=PATRONI)

NamespaceOption = Annotated[
    str, typer.Option("--namespace", help="Patroni's namespace (patroni.yml `namespace:`)")
]


AcceptRiskOption = Annotated[
    list[str] | None,
    typer.Option("--accept-risk", metavar="CVE-ID",
                 help="add a second scope although the running etcd has this advisory, which "
                 "lets one scope's user reach another's keys (repeat for several)"),
]


@patroni_app.command("add")
def add(
    ctx: typer.Context, scope: str, namespace: NamespaceOption = patroni_ops.DEFAULT_NAMESPACE,
    accept_risk: AcceptRiskOption = None,
    spec_file: SpecOption = None, cluster_name: ClusterOption = None,
) -> None:
    """Create role + user for SCOPE: readwrite on <namespace><scope>/ only (idempotent)."""
    result = patroni_ops.add(cluster_of(ctx, spec_file, cluster_name), scope, namespace,
                             accept_risk=frozenset(accept_risk or ()))
    done = ", ".join(result.changes) or "unchanged"
    session = session_of(ctx)
    session.out.print(
        f"scope {scope}: user {result.scope.user}, prefix {result.scope.prefix} — {done}",
        highlight=False,
    )
    session.warnings.extend(result.warnings)


@patroni_app.command("remove")
def remove(
    ctx: typer.Context, scope: str, spec_file: SpecOption = None, cluster_name: ClusterOption = None,
    yes: YesOption = False,
) -> None:
    """Delete SCOPE's etcd user and role, its password and bundles (its keys stay)."""
    from dcsctl.ops import patroni_deploy

    target = cluster_of(ctx, spec_file, cluster_name)
    listed = target.spec.patroni.scope(scope) if target.spec.patroni else None
    nodes = ", ".join(n.name for n in listed.nodes) if listed else ""
    confirm(f"Delete Patroni scope {scope}'s etcd user and role, password and bundles"
            + (f" (also from {nodes})" if nodes else "") + "? Its Patroni nodes lose access "
            "to the DCS and their primary demotes.", yes=yes, action="patroni remove")
    result = patroni_ops.remove(target, scope)
    taken = patroni_deploy.take_off(target, scope)
    session = session_of(ctx)
    session.out.print(
        f"removed {', '.join(result.changes) or 'nothing left in etcd'} for scope {scope}"
        + (f"; bundle removed from {', '.join(taken)}" if taken else ""),
        highlight=False,
    )
    if listed is not None:
        session.warnings.append(f"scope {scope} is still in the spec's patroni: section: the "
                                "next `dcsctl up` creates it again; remove it from the spec")


@patroni_app.command("list")
def list_(
    ctx: typer.Context, spec_file: SpecOption = None, cluster_name: ClusterOption = None,
    json_output: JsonOption = False,
) -> None:
    """Patroni scopes: dcsctl's and any found in etcd, with leader and members."""
    target = cluster_of(ctx, spec_file, cluster_name)
    with target.admin_client() as client:
        views = patroni_ops.scope_views(target, client)
    out = session_of(ctx).out
    if json_output:
        out.print_json(report.dump_json([
            {"scope": v.scope.name, "namespace": v.scope.namespace, "prefix": v.scope.prefix,
             "user": v.user, "leader": v.leader,
             "members": list(v.members)} for v in views
        ]))
        return
    table = Table("SCOPE", "PREFIX", "ETCD USER", "LEADER", "MEMBERS")
    for v in views:
        table.add_row(v.scope.name, v.scope.prefix, v.user or v.user_note,
                      v.leader or "-", ", ".join(v.members) or "-")
    out.print(table)


@patroni_app.command("config")
def config(
    ctx: typer.Context, scope: str,
    node: Annotated[str, typer.Option("--node", help="the database host this is for")],
    out: Annotated[Path | None, typer.Option("--out", help="write the bundle here")] = None,
    show_password: Annotated[bool, typer.Option(
        "--show-password", help="print the password too (it is always in etcd3.yml)")] = False,
    spec_file: SpecOption = None, cluster_name: ClusterOption = None,
) -> None:
    """Issue NODE's client cert (no CN) and print patroni.yml's `etcd3:` section."""
    bundle = patroni_ops.config(cluster_of(ctx, spec_file, cluster_name), scope, node, out)
    session = session_of(ctx)
    # Terminals are scrolled back, logged and screen-shared: the password is printed only
    # when asked for; the bundle's etcd3.yml (0600) always has it.
    session.out.file.write(bundle.section if show_password else bundle.masked_section)
    session.err.print(f"bundle (ca.crt, {node}.crt, {node}.key 0600, etcd3.yml 0600) in "
                      f"{bundle.directory}", highlight=False)
    for line in bundle.advice:
        session.err.print(f"advice: {line}", highlight=False)


@patroni_app.command("status")
def status(
    ctx: typer.Context, scope: Annotated[str | None, typer.Argument()] = None,
    spec_file: SpecOption = None, cluster_name: ClusterOption = None,
    json_output: JsonOption = False,
) -> None:
    """Per database node of the spec: reachable, Patroni version, role, dcs_last_seen age,
    certificate serial deployed vs issued, days left."""
    from dcsctl.ops import patroni_status

    nodes = patroni_status.status(cluster_of(ctx, spec_file, cluster_name), scope)
    out = session_of(ctx).out
    if json_output:
        out.print_json(report.dump_json({"nodes": [
            {"scope": n.scope, "name": n.name, "address": n.address,
             "reachable": n.reachable, "problem": n.problem or None, "version": n.version,
             "role": n.role, "state": n.state, "dcs_last_seen_age_s": n.dcs_last_seen_age_s,
             "serial_deployed": n.serial_deployed, "serial_issued": n.serial_issued,
             "drift": n.drift, "days_left": n.days_left}
            for n in nodes]}))
        return
    table = Table("SCOPE", "NODE", "REACHABLE", "PATRONI", "ROLE", "DCS SEEN",
                  "CERT DEPLOYED", "CERT ISSUED", "DAYS LEFT")
    for n in nodes:
        table.add_row(
            n.scope, n.name, "yes" if n.reachable else f"no ({n.problem})",
            n.version or "-", n.role or "-",
            f"{n.dcs_last_seen_age_s} s ago" if n.dcs_last_seen_age_s is not None else "-",
            n.serial_deployed or "-",
            (n.serial_issued or "-") + (" (drift)" if n.drift else ""),
            f"{n.days_left:g}" if n.days_left is not None else "-")
    out.print(table)


@patroni_app.command("doctor")
def doctor(
    ctx: typer.Context, scope: str, spec_file: SpecOption = None,
    cluster_name: ClusterOption = None, json_output: JsonOption = False,
) -> None:
    """Per node of SCOPE: reachable, Patroni version (>= 4.1.1), DCS contact, the deployed
    bundle is the issued one, timing against etcd's, failsafe_mode, and what the node's
    user may do (real requests); exit 4 on a failure."""
    from dcsctl.ops import patroni_status

    checks = patroni_status.doctor(cluster_of(ctx, spec_file, cluster_name), scope)
    out = session_of(ctx).out
    if json_output:
        out.print_json(report.dump_json({"scope": scope, "checks": [
            {"node": c.member, "check": c.name, "verdict": str(c.verdict),
             "detail": c.detail, "fix": c.fix or None} for c in checks]}))
    else:
        table = Table("NODE", "CHECK", "VERDICT", "DETAIL")
        for c in checks:
            table.add_row(c.member, c.name, c.verdict.upper(), c.detail)
        out.print(table)
    patroni_status.raise_failures(scope, checks)
