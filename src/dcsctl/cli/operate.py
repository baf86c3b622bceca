"""Day-two operations: members, certificates, maintenance, rolling restart."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dcsctl import report
from dcsctl import spec_file as spec_file_module
from dcsctl.cli.common import (
    CHANGE,
    ClusterOption,
    JsonOption,
    PatroniRiskOption,
    Session,
    SpecOption,
    YesOption,
    app,
    clusters_of,
    confirm,
    guard_patroni,
    running_cluster_of,
    session_of,
)
from dcsctl.errors import DcsctlError, ExitCode, NotFound
from dcsctl.files import atomic_write
from dcsctl.ops import maintenance, members, rotation, textfiles, upgrade
from dcsctl.ops.cluster import Cluster

member_app = typer.Typer(help="Add, remove or replace members, one change at a time.",
                         no_args_is_help=True)
certs_app = typer.Typer(help="Certificate expiry and rotation.", no_args_is_help=True)
app.add_typer(member_app, name="member", rich_help_panel=CHANGE)
app.add_typer(certs_app, name="certs", rich_help_panel=CHANGE)


def _refresh_spec_file(session: Session, target: Cluster, spec_file: Path | None) -> None:
    """After a membership (or lab binaries) change, a -f spec file says the old one: the
    changed values only are written into it, in place, keeping its comments, layout and
    mode; the change is shown as a diff."""
    if spec_file is None:
        return
    change = spec_file_module.updated(spec_file.read_text(), target.dir.load_spec(),
                                      name=str(spec_file))
    if change.changed:
        atomic_write(spec_file, change.text.encode(), stat.S_IMODE(spec_file.stat().st_mode))
        session.err.print(f"updated {spec_file}:\n{change.diff.rstrip()}", highlight=False,
                          markup=False)


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
    spec_file: SpecOption = None, cluster: ClusterOption = None,
) -> None:
    """Add NAME as a learner, start it, promote it once in sync (re-run to resume)."""
    target = running_cluster_of(ctx, spec_file, cluster)
    members.add(target, name, address, client_port=client_port, peer_port=peer_port,
                ssh=ssh, remote_root=remote_root)
    session = session_of(ctx)
    _refresh_spec_file(session, target, spec_file)
    session.out.print(f"{name} is a voting member", highlight=False)


@member_app.command("remove")
def member_remove(
    ctx: typer.Context, name: str,
    force: Annotated[bool, typer.Option("--force", help="even if quorum would be lost")] = False,
    spec_file: SpecOption = None, cluster: ClusterOption = None, yes: YesOption = False,
    accept_patroni_risk: PatroniRiskOption = None,
) -> None:
    """Remove NAME from the cluster, stop it and drop its data."""
    target = running_cluster_of(ctx, spec_file, cluster)
    guard_patroni(ctx, target, "member remove", accept_patroni_risk)
    confirm(f"Remove member {name} from {target.spec.name!r}, stop it and delete its data?",
            yes=yes, action="member remove")
    members.remove(target, name, force=force)
    session = session_of(ctx)
    _refresh_spec_file(session, target, spec_file)
    session.out.print(f"{name} removed", highlight=False)


@member_app.command("replace")
def member_replace(
    ctx: typer.Context, name: str, spec_file: SpecOption = None, cluster: ClusterOption = None,
    yes: YesOption = False, accept_patroni_risk: PatroniRiskOption = None,
) -> None:
    """Replace a dead or wiped member: remove, fresh data dir, add, promote."""
    target = running_cluster_of(ctx, spec_file, cluster)
    guard_patroni(ctx, target, "member replace", accept_patroni_risk)
    confirm(f"Replace member {name} of {target.spec.name!r}: remove it, delete its data dir "
            "and let it join afresh?", yes=yes, action="member replace")
    members.replace(target, name)
    session_of(ctx).out.print(f"{name} replaced and promoted", highlight=False)


@certs_app.command("check")
def certs_check(
    ctx: typer.Context, spec_file: SpecOption = None, cluster: ClusterOption = None,
    warn_days: Annotated[int, typer.Option("--warn-days", min=1)] = rotation.WARN_DAYS,
    json_output: JsonOption = False,
) -> None:
    """Every certificate, its holder and days left (exit 5 if any expires soon)."""
    target = running_cluster_of(ctx, spec_file, cluster)
    rows = rotation.inventory(target, warn_days)
    warning = textfiles.best_effort(lambda: textfiles.record_certificates(target, rows))
    session_of(ctx).warnings += [warning] if warning else []
    out = session_of(ctx).out
    if json_output:
        out.print_json(report.dump_json([
            {"holder": r.holder, "role": r.role, "path": str(r.path), "subject": r.subject,
             "not_after": r.not_after.isoformat(), "days_left": r.days_left,
             "verdict": str(r.verdict)} for r in rows
        ]))
    else:
        table = Table("HOLDER", "ROLE", "SUBJECT", "EXPIRES", "DAYS LEFT", "VERDICT")
        for r in rows:
            table.add_row(r.holder, r.role, r.subject, r.not_after.strftime("%Y-%m-%d"),
                          str(r.days_left), str(r.verdict))
        out.print(table)
    if any(r.verdict is not rotation.Verdict.OK for r in rows):
        raise typer.Exit(ExitCode.UNHEALTHY)


@certs_app.command("rotate")
def certs_rotate(
    ctx: typer.Context,
    ca: Annotated[bool, typer.Option("--ca", help="replace the CA itself")] = False,
    finish: Annotated[bool, typer.Option("--finish", help="drop the old CA (with --ca)")] = False,
    keep_keys: Annotated[bool, typer.Option(
        "--keep-keys", help="renew certificates only, same keys, no restart")] = False,
    patroni: Annotated[bool, typer.Option(
        "--patroni", help="also new keys for the Patroni bundles (redeploy them)")] = False,
    spec_file: SpecOption = None, cluster: ClusterOption = None, yes: YesOption = False,
    accept_patroni_risk: PatroniRiskOption = None,
) -> None:
    """New keys for members, admin and JWT signer (one rolling restart), replaced
    certificates revoked; or certificates only (--keep-keys); or the CA (--ca)."""
    if keep_keys and (ca or patroni):
        raise DcsctlError("--keep-keys renews member and admin certificates only",
                          fix="use it alone, or drop it for a key rotation")
    target = running_cluster_of(ctx, spec_file, cluster)
    incoming = target.dir.pki_dir / "ca-next.crt"
    # Dropping the old CA: afterwards the members trust only the incoming one.
    trusted_after = incoming.read_bytes() if ca and finish and incoming.exists() else None
    guard_patroni(ctx, target, "certs rotate", accept_patroni_risk,
                  trusted_after=trusted_after)
    if ca and finish:
        confirm(f"Drop the old CA of {target.spec.name!r}? Every certificate it signed (Patroni "
                "bundles not yet redeployed, copies of the old admin certificate) stops "
                "working.", yes=yes, action="certs rotate --ca --finish")
    if ca:
        result = rotation.rotate_ca(target, finish=finish)
    elif keep_keys:
        result = rotation.rotate_leaves(target)
    else:
        result = rotation.rotate_keys(target, patroni=patroni)
    out = session_of(ctx).out
    if result.renewed:
        out.print(f"renewed: {', '.join(result.renewed)}", highlight=False)
    if result.patroni_bundles:
        out.print(f"Patroni bundles rewritten (redeploy them): "
                  f"{', '.join(result.patroni_bundles)}", highlight=False)
    out.print(result.note, highlight=False)


@certs_app.command("revoke")
def certs_revoke(
    ctx: typer.Context,
    files: Annotated[list[Path] | None, typer.Argument(
        help="certificate files (PEM) issued by this cluster's CA")] = None,
    superseded: Annotated[bool, typer.Option(
        "--superseded", help="the certificates `certs rotate --patroni` replaced")] = False,
    yes: YesOption = False, spec_file: SpecOption = None, cluster: ClusterOption = None,
) -> None:
    """Revoke certificates: every member refuses them on its client and peer ports."""
    target = running_cluster_of(ctx, spec_file, cluster)
    if not target.dir.exists():
        raise NotFound(f"no cluster named {target.spec.name!r} in {target.dir.home}",
                       fix="check DCSCTL_HOME, -f or --cluster")
    if not files and not superseded:
        raise DcsctlError("nothing to revoke", fix="name certificate files, or pass --superseded")
    confirm(f"Revoke {len(files or [])} certificate file(s)"
            f"{' and the superseded certificates' if superseded else ''} for good?",
            yes=yes, action="certs revoke")
    result = rotation.revoke_certificates(target, files or [], include_superseded=superseded)
    out = session_of(ctx).out
    for entry in result.added:
        out.print(f"revoked {entry.holder or '(no name)'} serial {entry.serial:x}",
                  highlight=False)
    for serial in result.already:
        out.print(f"already revoked: serial {serial:x}", highlight=False)


@app.command("maintenance", rich_help_panel=CHANGE)
def maintenance_(
    ctx: typer.Context, spec_file: SpecOption = None, cluster: ClusterOption = None,
) -> None:
    """Compact history, defragment followers then the leader, disarm NOSPACE."""
    result = maintenance.maintain(running_cluster_of(ctx, spec_file, cluster))
    out = session_of(ctx).out
    out.print(f"compacted to revision {result.revision}", highlight=False)
    for name, before in result.db_size_before.items():
        after = result.db_size_after.get(name, before)
        out.print(f"{name}: {report.human_bytes(before)} -> {report.human_bytes(after)}",
                  highlight=False)
    if result.disarmed:
        out.print(f"disarmed alarms: {', '.join(result.disarmed)}", highlight=False)


@app.command("restart", rich_help_panel=CHANGE)
def restart(
    ctx: typer.Context, spec_file: SpecOption = None, cluster: ClusterOption = None,
    accept_patroni_risk: PatroniRiskOption = None,
) -> None:
    """Rolling restart: one member at a time, leader last (after handing over)."""
    target = running_cluster_of(ctx, spec_file, cluster)
    guard_patroni(ctx, target, "restart", accept_patroni_risk)
    result = maintenance.rolling_restart(target)
    session_of(ctx).out.print(f"restarted {', '.join(result.order)}", highlight=False)


BinDirOption = Annotated[Path | None, typer.Option(
    "--bin-dir", help="lab clusters: the folder with that etcd's etcd, etcdctl, etcdutl "
    "(SSH clusters name the release in the spec's install: section)")]


def _print_version_change(session: Session, result: upgrade.UpgradeResult, verb: str) -> None:
    if result.snapshot:
        session.out.print(f"snapshot before the change: {result.snapshot}", highlight=False)
    session.out.print(
        f"etcd {result.from_version} -> {result.to_version}: {verb} "
        f"{', '.join(result.upgraded) or 'nothing (already there)'}"
        + (f"; cluster version {result.cluster_version}" if result.cluster_version else ""),
        highlight=False)


@app.command("upgrade", rich_help_panel=CHANGE)
def upgrade_(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="target etcd version, e.g. 3.6.16")],
    bin_dir: BinDirOption = None,
    spec_file: SpecOption = None, cluster: ClusterOption = None,
    accept_patroni_risk: PatroniRiskOption = None,
) -> None:
    """Rolling upgrade: supported paths only, snapshot first, leader last (re-run resumes)."""
    target, running = clusters_of(ctx, spec_file, cluster)
    guard_patroni(ctx, running, "upgrade", accept_patroni_risk)
    result = upgrade.upgrade(target, running, to=to, bin_dir=bin_dir)
    session = session_of(ctx)
    _refresh_spec_file(session, target, spec_file)
    _print_version_change(session, result, "upgraded")


@app.command("downgrade", rich_help_panel=CHANGE)
def downgrade_(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="the release line to go back to, e.g. 3.6")],
    bin_dir: BinDirOption = None, yes: YesOption = False,
    spec_file: SpecOption = None, cluster: ClusterOption = None,
    accept_patroni_risk: PatroniRiskOption = None,
) -> None:
    """etcd's downgrade (3.6+, one minor): storage migrated first, then members rolled."""
    target, running = clusters_of(ctx, spec_file, cluster)
    guard_patroni(ctx, running, "downgrade", accept_patroni_risk)
    session = session_of(ctx)
    confirm(f"Downgrade etcd cluster {target.spec.name!r} to {to}? Members restart one at "
            "a time on the older binaries.", yes=yes, action="the downgrade")
    result = upgrade.downgrade(target, running, to=to, bin_dir=bin_dir)
    _refresh_spec_file(session, target, spec_file)
    _print_version_change(session, result, "downgraded")
