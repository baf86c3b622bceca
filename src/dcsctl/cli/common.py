"""What every command shares: the app, the session, the options that pick a cluster."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich.console import Console

from dcsctl import spec
from dcsctl.errors import DcsctlError, SpecError
from dcsctl.ops.cluster import Cluster, Context
from dcsctl.report import Output, print_output

app = typer.Typer(
    name="dcsctl",
    help="Stand up and operate the secure etcd cluster that Patroni uses as its DCS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# `--help` groups the commands by what a user is doing.
SET_UP = "Set up"
LOOK = "Look"
PROTECT = "Protect"
CHANGE = "Change"
PATRONI = "Patroni"
HELP_PANELS = (SET_UP, LOOK, PROTECT, CHANGE, PATRONI)


def in_help_order(commands: typer.Typer) -> None:
    """Order the registered commands by panel: `--help` shows a panel where its first
    command is, and which command module was imported first must not decide that (a
    process that ran `backup` before `--help` would list Protect first)."""
    rank = {panel: i for i, panel in enumerate(HELP_PANELS)}
    commands.registered_commands.sort(
        key=lambda c: rank.get(str(c.rich_help_panel), len(rank)))
    commands.registered_groups.sort(
        key=lambda g: rank.get(str(g.rich_help_panel), len(rank)))

# typer prints a flag's type in --help (`--json <bool>`), though a flag takes no value.
_display_type_rich = typer.core.TyperOption.display_type_rich


def _flag_type(self: typer.core.TyperOption, ctx: Any) -> str | None:
    return None if self.is_flag else _display_type_rich(self, ctx)


typer.core.TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]


@dataclass
class Session:
    """What every command gets: the Context and where to write."""

    context: Context
    out: Console
    err: Console
    debug: bool = False
    warnings: list[str] = field(default_factory=list)


SpecOption = Annotated[
    Path | None,
    typer.Option("--spec", "-f", help="cluster spec (YAML); default: the built-in lab spec"),
]
ClusterOption = Annotated[
    str | None,
    typer.Option("--cluster", "-c", help="a cluster already in DCSCTL_HOME, by name"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="do not ask")]
PatroniRiskOption = Annotated[list[str] | None, typer.Option(
    "--accept-patroni-risk", metavar="SCOPE/NODE",
    help="go ahead although this Patroni node's deployed certificate would be refused when "
    "it reconnects (its primary would demote); repeat for several")]


def guard_patroni(ctx: typer.Context, cluster: Cluster, operation: str,
                  accepted: list[str] | None, *, trusted_after: bytes | None = None) -> None:
    """Refuse an operation that makes etcd clients reconnect while a managed Patroni
    node's deployed certificate would be refused (ops.patroni_guard)."""
    from dcsctl.ops import patroni_guard

    session_of(ctx).warnings.extend(patroni_guard.require_fit(
        cluster, operation, frozenset(accepted or ()), trusted_after=trusted_after))


def confirm(question: str, *, yes: bool, action: str, risk: str = "",
            unattended: DcsctlError | None = None) -> None:
    """Go on only with --yes or a "y" typed at a terminal (after `risk`, if any, is shown).

    Without a terminal nobody can answer: a script that forgot --yes is refused
    (`unattended`, or a generic refusal) rather than left waiting or, worse, taken as a yes.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise unattended or DcsctlError(
            f"{action} needs a confirmation and there is no terminal to ask on",
            fix="run it at a terminal, or pass --yes if you mean it")
    if risk:
        typer.echo(f"warning: {risk}", err=True)
    if not typer.confirm(question):
        raise DcsctlError(f"{action} cancelled", fix="pass --yes to skip the question")


def show(ctx: typer.Context, output: Output, *, json_output: bool = False,
         warnings: Iterable[str] = ()) -> None:
    """Print a command's result (its renderer's `Output`); keep its warnings for the end."""
    session = session_of(ctx)
    session.warnings.extend(warnings)
    print_output(output, session.out, session.err, json_output=json_output)


def session_of(ctx: typer.Context) -> Session:
    session = ctx.obj
    assert isinstance(session, Session)
    return session


def load_spec(path: Path) -> spec.ClusterSpec:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(
            f"cannot read spec {path}: {exc.strerror}",
            fix="pass an existing file to -f/--spec (write one with `dcsctl init -o FILE`)",
        ) from exc
    return spec.parse(text, source=str(path))


def cluster_of(ctx: typer.Context, spec_file: Path | None, cluster_name: str | None
               ) -> Cluster:
    """The cluster a command works on: -f FILE, --cluster NAME, or the built-in lab."""
    context = session_of(ctx).context
    if spec_file is not None and cluster_name is not None:
        raise DcsctlError("-f/--spec and --cluster both name a cluster",
                          fix="pass only one of them")
    if spec_file is not None:
        return context.cluster(load_spec(spec_file))
    if cluster_name is not None:
        return context.saved_cluster(cluster_name)
    lab = spec.lab_spec()
    # The built-in cluster as it is now (members may have been added since the first up).
    if context.cluster(lab).dir.spec_path.exists():
        return context.saved_cluster(lab.name)
    return context.cluster(lab)


def clusters_of(ctx: typer.Context, spec_file: Path | None, cluster_name: str | None
                ) -> tuple[Cluster, Cluster]:
    """The cluster as named (-f, --cluster, the built-in lab) and as it runs: the spec its
    state dir holds (members added since, the etcd it runs), whatever -f says. Resolved
    here, once, and passed down."""
    named = cluster_of(ctx, spec_file, cluster_name)
    # Without -f, cluster_of already read the state dir's spec.
    return named, (named.as_recorded() if spec_file is not None else named)


def running_cluster_of(ctx: typer.Context, spec_file: Path | None, cluster_name: str | None
                       ) -> Cluster:
    """For commands that act on a running cluster (membership, certificates, checks,
    maintenance, stop)."""
    return clusters_of(ctx, spec_file, cluster_name)[1]


def _show_version(ctx: typer.Context, value: bool) -> None:
    """dcsctl's version and the etcd a lab cluster would run (etcd.bin_dir unset)."""
    if not value:
        return
    from dcsctl.ops.about import about

    session = session_of(ctx)
    found = about(session.context.environ)
    session.out.print(f"dcsctl {found.dcsctl}", highlight=False)
    session.out.print(found.etcd, highlight=False, markup=False)
    raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    show_version: Annotated[bool, typer.Option(
        "--version", help="dcsctl's version and the etcd it would use", is_eager=True,
        callback=_show_version)] = False,
) -> None:
    session_of(ctx).debug = debug


