"""Patroni: per-scope etcd identities and the patroni.yml `etcd3:` section."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcsctl.cli.common import (
    PATRONI,
    ClusterOption,
    JsonOption,
    SpecOption,
    YesOption,
    app,
    cluster_of,
    confirm,
    show,
)
from dcsctl.ops import patroni as patroni_ops
from dcsctl.report import patroni as report

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
    show(ctx, report.added_output(result), warnings=result.warnings)


@patroni_app.command("remove")
def remove(
    ctx: typer.Context, scope: str, spec_file: SpecOption = None,
    cluster_name: ClusterOption = None, yes: YesOption = False,
) -> None:
    """Delete SCOPE's etcd user and role, its password and bundles (its keys stay)."""
    from dcsctl.ops import patroni_deploy

    cluster = cluster_of(ctx, spec_file, cluster_name)
    listed = cluster.spec.patroni.scope(scope) if cluster.spec.patroni else None
    nodes = ", ".join(n.name for n in listed.nodes) if listed else ""
    confirm(f"Delete Patroni scope {scope}'s etcd user and role, password and bundles"
            + (f" (also from {nodes})" if nodes else "") + "? Its Patroni nodes lose access "
            "to the DCS and their primary demotes.", yes=yes, action="patroni remove")
    result = patroni_deploy.remove_scope(cluster, scope)
    show(ctx, report.removed_output(scope, result), warnings=result.warnings)


@patroni_app.command("list")
def list_(
    ctx: typer.Context, spec_file: SpecOption = None, cluster_name: ClusterOption = None,
    json_output: JsonOption = False,
) -> None:
    """Patroni scopes: dcsctl's and any found in etcd, with leader and members."""
    views = patroni_ops.list_scopes(cluster_of(ctx, spec_file, cluster_name))
    show(ctx, report.scopes_output(views), json_output=json_output)


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
    show(ctx, report.config_output(bundle, node, show_password=show_password))


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
    show(ctx, report.status_output(nodes), json_output=json_output)


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
    show(ctx, report.doctor_output(scope, checks), json_output=json_output)
    patroni_status.raise_failures(scope, checks)
