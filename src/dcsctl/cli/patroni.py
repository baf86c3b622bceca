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
    spec_file: SpecOption = None, cluster: ClusterOption = None,
) -> None:
    """Create role + user for SCOPE: readwrite on <namespace><scope>/ only (idempotent)."""
    result = patroni_ops.add(cluster_of(ctx, spec_file, cluster), scope, namespace,
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
    ctx: typer.Context, scope: str, spec_file: SpecOption = None, cluster: ClusterOption = None,
    yes: YesOption = False,
) -> None:
    """Delete SCOPE's etcd user and role, its password and bundles (its keys stay)."""
    target = cluster_of(ctx, spec_file, cluster)
    confirm(f"Delete Patroni scope {scope}'s etcd user and role, password and bundles? Its "
            "Patroni nodes lose access to the DCS and their primary demotes.",
            yes=yes, action="patroni remove")
    result = patroni_ops.remove(target, scope)
    session_of(ctx).out.print(
        f"removed {', '.join(result.changes) or 'nothing left in etcd'} for scope {scope}",
        highlight=False,
    )


@patroni_app.command("list")
def list_(
    ctx: typer.Context, spec_file: SpecOption = None, cluster: ClusterOption = None,
    json_output: JsonOption = False,
) -> None:
    """Patroni scopes: dcsctl's and any found in etcd, with leader and members."""
    target = cluster_of(ctx, spec_file, cluster)
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
    spec_file: SpecOption = None, cluster: ClusterOption = None,
) -> None:
    """Issue NODE's client cert (no CN) and print patroni.yml's `etcd3:` section."""
    bundle = patroni_ops.config(cluster_of(ctx, spec_file, cluster), scope, node, out)
    session = session_of(ctx)
    # Terminals are scrolled back, logged and screen-shared: the password is printed only
    # when asked for; the bundle's etcd3.yml (0600) always has it.
    session.out.file.write(bundle.section if show_password else bundle.masked_section)
    session.err.print(f"bundle (ca.crt, {node}.crt, {node}.key 0600, etcd3.yml 0600) in "
                      f"{bundle.directory}", highlight=False)
    for line in bundle.advice:
        session.err.print(f"advice: {line}", highlight=False)
