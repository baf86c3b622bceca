"""The control machine's own state: `state export` (an escrow) and `state import`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcsctl.cli.common import (
    PROTECT,
    ClusterOption,
    SpecOption,
    app,
    cluster_of,
    session_of,
    show,
)
from dcsctl.errors import UsageError

state_app = typer.Typer(help="Escrow this machine's state for a new control machine "
                        "(`state export`), and bring it back (`state import`).")
app.add_typer(state_app, name="state", rich_help_panel=PROTECT)

PassphraseOption = Annotated[Path | None, typer.Option(
    "--passphrase-file", help="a file (mode 0600) holding the passphrase; default: ask")]


def _passphrase(file: Path | None, *, confirm: bool) -> bytes:
    from dcsctl.ops import escrow as escrow_ops

    if file is not None:
        return escrow_ops.read_passphrase_file(file)
    if not typer.get_text_stream("stdin").isatty():
        raise UsageError("no passphrase: stdin is not a terminal to ask on",
                         fix="pass --passphrase-file FILE (mode 0600)")
    text: str = typer.prompt("Escrow passphrase", hide_input=True,
                             confirmation_prompt=confirm)
    return text.encode()


@state_app.command("export")
def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="the escrow file to write (0600)")],
    passphrase_file: PassphraseOption = None,
    to_store: Annotated[bool, typer.Option(
        "--to-store", help="also put it in the backup store (backup.store.s3)")] = False,
    spec_file: SpecOption = None, cluster_name: ClusterOption = None,
) -> None:
    """Write one passphrase-sealed file with what a new control machine needs: the spec,
    CA, admin, JWT, manifest and backup keys, records and passwords (no etcd data)."""
    from dcsctl.ops import escrow as escrow_ops
    from dcsctl.report import backups as report

    cluster = cluster_of(ctx, spec_file, cluster_name)
    if not cluster.dir.exists():
        raise UsageError(f"no state of cluster {cluster.spec.name!r} to export",
                         fix="create the cluster with `dcsctl up` first")
    passphrase = _passphrase(passphrase_file, confirm=True)
    show(ctx, report.exported_output(escrow_ops.export(cluster, out, passphrase,
                                                       to_store=to_store)))


@state_app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Argument(help="an escrow written by `state export`")
                    ] = None,
    passphrase_file: PassphraseOption = None,
    from_store: Annotated[bool, typer.Option(
        "--from-store", help="the newest escrow in the spec's backup store (needs -f)")
    ] = False,
    spec_file: SpecOption = None, cluster_name: ClusterOption = None,
) -> None:
    """Bring a cluster's state back on a new control machine (a fresh DCSCTL_HOME); a
    wrong passphrase, a damaged file or another cluster's escrow writes nothing."""
    from dcsctl.ops import escrow as escrow_ops
    from dcsctl.report import backups as report

    session = session_of(ctx)
    expected = cluster_name
    if (file is None) == (not from_store):
        raise UsageError("name one escrow: a FILE or --from-store",
                         fix="e.g. `dcsctl state import escrow.dcs --passphrase-file PF`")
    if from_store:
        if spec_file is None:
            raise UsageError("--from-store needs the spec that names the store",
                             fix="add -f SPEC")
        cluster = cluster_of(ctx, spec_file, cluster_name)
        expected = cluster.spec.name
        what, data = escrow_ops.newest_in_store(cluster)
    else:
        assert file is not None
        if spec_file is not None:
            expected = cluster_of(ctx, spec_file, cluster_name).spec.name
        what, data = str(file), file.read_bytes()
    passphrase = _passphrase(passphrase_file, confirm=False)
    done = escrow_ops.import_(session.context.home, data, passphrase, what=what,
                              expected_cluster=expected, now=session.context.clock())
    show(ctx, report.imported_output(done))
