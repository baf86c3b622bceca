"""The control machine's own state: `state export` (an escrow) and `state import`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcsctl import report
from dcsctl.cli.common import PROTECT, ClusterOption, SpecOption, app, cluster_of, session_of
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

    target = cluster_of(ctx, spec_file, cluster_name)
    if not target.dir.exists():
        raise UsageError(f"no state of cluster {target.spec.name!r} to export",
                         fix="create the cluster with `dcsctl up` first")
    passphrase = _passphrase(passphrase_file, confirm=True)
    done = escrow_ops.export(target, out, passphrase, to_store=to_store)
    from dcsctl import escrow as escrow_format

    kinds = ", ".join(f"{count} {kind}" for kind, count in
                      sorted(escrow_format.summary(done.escrow).items()))
    session_of(ctx).out.print(
        f"escrow of {done.escrow.cluster} written to {out} ({report.human_bytes(done.size)}: "
        f"{kinds})" + (f"\nalso stored at {done.stored_as}" if done.stored_as else "")
        + "\nkeep the passphrase apart from the file: one without the other opens nothing",
        highlight=False)


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

    session = session_of(ctx)
    expected = cluster
    if (file is None) == (not from_store):
        raise UsageError("name one escrow: a FILE or --from-store",
                         fix="e.g. `dcsctl state import escrow.dcs --passphrase-file PF`")
    if from_store:
        if spec_file is None:
            raise UsageError("--from-store needs the spec that names the store",
                             fix="add -f SPEC")
        target = cluster_of(ctx, spec_file, cluster_name)
        expected = target.spec.name
        what, data = escrow_ops.newest_in_store(target)
    else:
        assert file is not None
        if spec_file is not None:
            expected = cluster_of(ctx, spec_file, cluster_name).spec.name
        what, data = str(file), file.read_bytes()
    passphrase = _passphrase(passphrase_file, confirm=False)
    done = escrow_ops.import_(session.context.home, data, passphrase, what=what,
                              expected_cluster=expected, now=session.context.clock())
    session.out.print(
        f"imported cluster {done.cluster} into {done.root}: {done.files} files, escrowed at "
        f"{done.exported_at}", highlight=False)
