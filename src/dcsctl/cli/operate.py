"""Day-two operations: members, certificates, maintenance, rolling restart."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcsctl.cli.common import (
    CHANGE,
    ClusterOption,
    JsonOption,
    PatroniRiskOption,
    SpecOption,
    YesOption,
    app,
    clusters_of,
    confirm,
    guard_patroni,
    running_cluster_of,
    show,
)
from dcsctl.errors import DcsctlError, ExitCode, NotFound, UsageError
from dcsctl.ops import certs, expiry, maintenance, members, rotation, upgrade, user_spec
from dcsctl.report import Output
from dcsctl.report import changes as report

member_app = typer.Typer(help="Add, remove or replace members, one change at a time.",
                         no_args_is_help=True)
certs_app = typer.Typer(help="Certificate expiry and rotation.", no_args_is_help=True)
app.add_typer(member_app, name="member", rich_help_panel=CHANGE)
app.add_typer(certs_app, name="certs", rich_help_panel=CHANGE)


@member_app.command("add")
def member_add(
    ctx: typer.Context, name: str,
    address: Annotated[str, typer.Option("--address", help="the new member's IP address")],
    client_port: Annotated[int | None, typer.Option("--client-port")] = None,
    peer_port: Annotated[int | None, typer.Option("--peer-port")] = None,
    ssh: Annotated[str | None, typer.Option(
        "--ssh", help="SSH clusters: [user@]host[:port] or ~/.ssh/config alias")] = None,
    remote_root: Annotated[str | None, typer.Option(
        "--remote-root", help="SSH clusters: prefix for the host's paths")] = None,
    spec_file: SpecOption = None, cluster_name: ClusterOption = None,
) -> None:
    """Add NAME as a learner, start it, promote it once in sync (re-run to resume)."""
    cluster = running_cluster_of(ctx, spec_file, cluster_name)
    members.add(cluster, name, address, client_port=client_port, peer_port=peer_port,
                ssh=ssh, remote_root=remote_root)
    show(ctx, report.spec_file_note(spec_file, user_spec.follow_member(cluster, spec_file, name)))
    show(ctx, Output((f"{name} is a voting member",)))


@member_app.command("remove")
def member_remove(
    ctx: typer.Context, name: str,
    force: Annotated[bool, typer.Option("--force", help="even if quorum would be lost")] = False,
    spec_file: SpecOption = None, cluster_name: ClusterOption = None, yes: YesOption = False,
    accept_patroni_risk: PatroniRiskOption = None,
) -> None:
    """Remove NAME from the cluster, stop it and drop its data."""
    cluster = running_cluster_of(ctx, spec_file, cluster_name)
    guard_patroni(ctx, cluster, "member remove", accept_patroni_risk)
    confirm(f"Remove member {name} from {cluster.spec.name!r}, stop it and delete its data?",
            yes=yes, action="member remove")
    members.remove(cluster, name, force=force)
    show(ctx, report.spec_file_note(spec_file, user_spec.follow_member(cluster, spec_file, name)))
    show(ctx, Output((f"{name} removed",)))


@member_app.command("replace")
def member_replace(
    ctx: typer.Context, name: str, spec_file: SpecOption = None, cluster_name: ClusterOption = None,
    yes: YesOption = False, accept_patroni_risk: PatroniRiskOption = None,
) -> None:
    """Replace a dead or wiped member: remove, fresh data dir, add, promote."""
    cluster = running_cluster_of(ctx, spec_file, cluster_name)
    guard_patroni(ctx, cluster, "member replace", accept_patroni_risk)
    confirm(f"Replace member {name} of {cluster.spec.name!r}: remove it, delete its data dir "
            "and let it join afresh?", yes=yes, action="member replace")
    members.replace(cluster, name)
    show(ctx, report.spec_file_note(spec_file, user_spec.follow_member(cluster, spec_file, name)))
    show(ctx, Output((f"{name} replaced and promoted",)))


@certs_app.command("check")
def certs_check(
    ctx: typer.Context, spec_file: SpecOption = None, cluster_name: ClusterOption = None,
    warn_days: Annotated[int, typer.Option("--warn-days", min=1)] = rotation.WARN_DAYS,
    json_output: JsonOption = False,
) -> None:
    """Every certificate, its holder and days left (exit 5 if any expires soon)."""
    checked = expiry.check(running_cluster_of(ctx, spec_file, cluster_name), warn_days)
    show(ctx, report.certificates_output(checked), json_output=json_output,
         warnings=checked.warnings)
    if not checked.all_ok:
        raise typer.Exit(ExitCode.UNHEALTHY)


@certs_app.command("rotate")
def certs_rotate(
    ctx: typer.Context,
    ca: Annotated[bool, typer.Option("--ca", help="replace the CA itself")] = False,
    finish: Annotated[bool, typer.Option("--finish", help="drop the old CA (with --ca)")] = False,
    keep_keys: Annotated[bool, typer.Option(
        "--keep-keys", help="renew certificates only, same keys, no restart")] = False,
    patroni: Annotated[bool, typer.Option(
        "--patroni",
        help="also new keys for the Patroni bundles (deployed to the spec's nodes)")] = False,
    spec_file: SpecOption = None, cluster_name: ClusterOption = None, yes: YesOption = False,
    accept_patroni_risk: PatroniRiskOption = None,
) -> None:
    """New keys for members, admin and JWT signer (one rolling restart), replaced
    certificates revoked; or certificates only (--keep-keys); or the CA (--ca)."""
    if keep_keys and (ca or patroni):
        raise DcsctlError("--keep-keys renews member and admin certificates only",
                          fix="use it alone, or drop it for a key rotation")
    if finish and not ca:
        raise UsageError("--finish completes a CA rotation", fix="use it with --ca")
    cluster = running_cluster_of(ctx, spec_file, cluster_name)
    if ca and finish:  # before the question: nothing to confirm when it would be refused
        rotation.require_ca_rotation_under_way(cluster)
    # Dropping the old CA: afterwards the members trust only the incoming one.
    trusted_after = certs.incoming_ca(cluster.dir) if ca and finish else None
    guard_patroni(ctx, cluster, "certs rotate", accept_patroni_risk,
                  trusted_after=trusted_after)
    if ca and finish:
        confirm(f"Drop the old CA of {cluster.spec.name!r}? Every certificate it signed (Patroni "
                "bundles not yet redeployed, copies of the old admin certificate) stops "
                "working.", yes=yes, action="certs rotate --ca --finish")
    if ca:
        result = rotation.rotate_ca(cluster, finish=finish)
    elif keep_keys:
        result = rotation.rotate_leaves(cluster)
    else:
        result = rotation.rotate_keys(cluster, patroni=patroni)
    show(ctx, report.rotation_output(result))


@certs_app.command("revoke")
def certs_revoke(
    ctx: typer.Context,
    files: Annotated[list[Path] | None, typer.Argument(
        help="certificate files (PEM) issued by this cluster's CA")] = None,
    superseded: Annotated[bool, typer.Option(
        "--superseded", help="the certificates `certs rotate --patroni` replaced")] = False,
    yes: YesOption = False, spec_file: SpecOption = None, cluster_name: ClusterOption = None,
) -> None:
    """Revoke certificates: every member refuses them on its client and peer ports."""
    cluster = running_cluster_of(ctx, spec_file, cluster_name)
    if not cluster.dir.exists():
        raise NotFound(f"no cluster named {cluster.spec.name!r} in {cluster.dir.home}",
                       fix="check DCSCTL_HOME, -f or --cluster")
    if not files and not superseded:
        raise DcsctlError("nothing to revoke", fix="name certificate files, or pass --superseded")
    confirm(f"Revoke {len(files or [])} certificate file(s)"
            f"{' and the superseded certificates' if superseded else ''} for good?",
            yes=yes, action="certs revoke")
    result = rotation.revoke_certificates(cluster, files or [], include_superseded=superseded)
    show(ctx, report.revoked_output(result))


@app.command("maintenance", rich_help_panel=CHANGE)
def maintenance_(
    ctx: typer.Context, spec_file: SpecOption = None, cluster_name: ClusterOption = None,
) -> None:
    """Compact history, defragment followers then the leader, disarm NOSPACE."""
    result = maintenance.maintain(running_cluster_of(ctx, spec_file, cluster_name))
    show(ctx, report.maintenance_output(result))


@app.command("restart", rich_help_panel=CHANGE)
def restart(
    ctx: typer.Context, spec_file: SpecOption = None, cluster_name: ClusterOption = None,
    accept_patroni_risk: PatroniRiskOption = None,
) -> None:
    """Rolling restart: one member at a time, leader last (after handing over)."""
    cluster = running_cluster_of(ctx, spec_file, cluster_name)
    guard_patroni(ctx, cluster, "restart", accept_patroni_risk)
    show(ctx, report.restart_output(maintenance.rolling_restart(cluster)))


BinDirOption = Annotated[Path | None, typer.Option(
    "--bin-dir", help="lab clusters: the folder with that etcd's etcd, etcdctl, etcdutl "
    "(SSH clusters name the release in the spec's install: section)")]


@app.command("upgrade", rich_help_panel=CHANGE)
def upgrade_(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="target etcd version, e.g. 3.6.16")],
    bin_dir: BinDirOption = None,
    spec_file: SpecOption = None, cluster_name: ClusterOption = None,
    accept_patroni_risk: PatroniRiskOption = None,
) -> None:
    """Rolling upgrade: supported paths only, snapshot first, leader last (re-run resumes)."""
    named, running = clusters_of(ctx, spec_file, cluster_name)
    guard_patroni(ctx, running, "upgrade", accept_patroni_risk)
    result = upgrade.upgrade(named, running, to=to, bin_dir=bin_dir)
    show(ctx, report.spec_file_note(spec_file, user_spec.refresh(named, spec_file)))
    show(ctx, report.version_change_output(result, "upgraded"))


@app.command("downgrade", rich_help_panel=CHANGE)
def downgrade_(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="the release line to go back to, e.g. 3.6")],
    bin_dir: BinDirOption = None, yes: YesOption = False,
    spec_file: SpecOption = None, cluster_name: ClusterOption = None,
    accept_patroni_risk: PatroniRiskOption = None,
) -> None:
    """etcd's downgrade (3.6+, one minor): storage migrated first, then members rolled."""
    named, running = clusters_of(ctx, spec_file, cluster_name)
    guard_patroni(ctx, running, "downgrade", accept_patroni_risk)
    confirm(f"Downgrade etcd cluster {named.spec.name!r} to {to}? Members restart one at "
            "a time on the older binaries.", yes=yes, action="the downgrade")
    result = upgrade.downgrade(named, running, to=to, bin_dir=bin_dir)
    show(ctx, report.spec_file_note(spec_file, user_spec.refresh(named, spec_file)))
    show(ctx, report.version_change_output(result, "downgraded"))
