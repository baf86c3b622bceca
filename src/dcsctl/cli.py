"""The command line: parse, call one use case, render its result. The only place that
prints or exits, and the one error handler (tracebacks only with --debug)."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.console import Console

from dcsctl import report, spec
from dcsctl.errors import DcsctlError, ExitCode, SpecError
from dcsctl.ops import keys, lifecycle
from dcsctl.ops import status as status_ops
from dcsctl.ops.context import Cluster, Context

app = typer.Typer(
    name="dcsctl",
    help="Stand up and operate the secure etcd cluster that Patroni uses as its DCS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


def _session(ctx: typer.Context) -> Session:
    session = ctx.obj
    assert isinstance(session, Session)
    return session


def _load_spec(path: Path) -> spec.ClusterSpec:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(
            f"cannot read spec {path}: {exc.strerror}",
            fix="pass an existing file to -f/--spec (write one with `dcsctl init -o FILE`)",
        ) from exc
    return spec.parse(text, source=str(path))


def _target(ctx: typer.Context, spec_file: Path | None, cluster: str | None) -> Cluster:
    """The cluster a command works on: -f FILE, --cluster NAME, or the built-in lab."""
    context = _session(ctx).context
    if spec_file is not None and cluster is not None:
        raise DcsctlError("-f/--spec and --cluster both name a cluster",
                          fix="pass only one of them")
    if spec_file is not None:
        return context.cluster(_load_spec(spec_file))
    if cluster is not None:
        return context.saved_cluster(cluster)
    return context.cluster(spec.lab_spec())


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
) -> None:
    _session(ctx).debug = debug


@app.command()
def init(
    ctx: typer.Context,
    members: Annotated[int, typer.Option("--members", "-n", help="member count")] = 3,
    name: Annotated[str, typer.Option("--name", help="cluster name")] = "dcs",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file to write")] = None,
) -> None:
    """Write an annotated cluster spec (to stdout, or to -o FILE)."""
    session = _session(ctx)
    lab = spec.lab_spec(members, name)
    session.warnings += lab.warnings()
    text = spec.render_annotated(lab)
    if output is None:
        session.out.file.write(text)
        return
    if output.exists():
        raise DcsctlError(f"{output} already exists", fix="choose another -o FILE or remove it")
    output.write_text(text)
    session.err.print(f"wrote {output}", highlight=False)


@app.command()
def up(
    ctx: typer.Context, spec_file: SpecOption = None, cluster: ClusterOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create or resume the cluster and bring it to the spec (safe to re-run)."""
    session = _session(ctx)
    target = _target(ctx, spec_file, cluster)
    result = lifecycle.up(target)
    session.warnings += result.warnings
    if json_output:
        session.out.print_json(report.dump_json(report.up_json(result)))
        return
    view = status_ops.status(target)
    for table in report.status_tables(view):
        session.out.print(table)
    session.out.print(report.status_summary(view), highlight=False)
    if not result.changed:
        session.err.print("no changes", highlight=False)


@app.command()
def down(ctx: typer.Context, spec_file: SpecOption = None, cluster: ClusterOption = None) -> None:
    """Stop every member (data, certificates and config are kept)."""
    result = lifecycle.down(_target(ctx, spec_file, cluster))
    _session(ctx).out.print(report.down_text(result), highlight=False)


@app.command()
def destroy(
    ctx: typer.Context, spec_file: SpecOption = None, cluster: ClusterOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Stop the members and delete the cluster: data, PKI, credentials."""
    target = _target(ctx, spec_file, cluster)
    if not target.dir.root.exists():
        raise DcsctlError(f"no cluster named {target.spec.name!r} in {target.dir.home}",
                          fix="nothing to destroy; check DCSCTL_HOME or --cluster")
    if not yes and not typer.confirm(
        f"Delete cluster {target.spec.name!r} and all its data in {target.dir.root}?"
    ):
        raise DcsctlError("destroy cancelled", fix="pass --yes to skip the question")
    result = lifecycle.destroy(target)
    _session(ctx).out.print(report.down_text(result) + f"; removed {target.dir.root}",
                            highlight=False)


@app.command()
def status(
    ctx: typer.Context, spec_file: SpecOption = None, cluster: ClusterOption = None,
    json_output: JsonOption = False,
) -> None:
    """Members, endpoint status, health and alarms in one view (exit 5 if unhealthy)."""
    session = _session(ctx)
    view = status_ops.status(_target(ctx, spec_file, cluster))
    if json_output:
        session.out.print_json(report.dump_json(report.status_json(view)))
    else:
        for table in report.status_tables(view):
            session.out.print(table)
        for problem in view.problems:
            session.out.print(f"problem: {problem}", highlight=False)
        session.out.print(report.status_summary(view), highlight=False)
    if not view.healthy:
        raise typer.Exit(ExitCode.UNHEALTHY)


@app.command()
def env(ctx: typer.Context, spec_file: SpecOption = None, cluster: ClusterOption = None) -> None:
    """Print shell exports for etcdctl as admin: eval "$(dcsctl env)"."""
    exports = keys.etcdctl_env(_target(ctx, spec_file, cluster))
    _session(ctx).out.file.write(report.shell_exports(exports) + "\n")


@app.command()
def put(
    ctx: typer.Context, key: str, value: str, spec_file: SpecOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Write a key (as admin)."""
    keys.put(_target(ctx, spec_file, cluster), key, value.encode())
    _session(ctx).out.print("OK", highlight=False)


@app.command()
def get(
    ctx: typer.Context, key: str, spec_file: SpecOption = None, cluster: ClusterOption = None,
    json_output: JsonOption = False,
) -> None:
    """Read a key's value (as admin)."""
    found = keys.get(_target(ctx, spec_file, cluster), key)
    out = _session(ctx).out
    if json_output:
        out.print_json(report.dump_json({
            "key": found.key, "value": found.value.decode(errors="replace"),
            "create_revision": found.create_revision, "mod_revision": found.mod_revision,
            "version": found.version,
        }))
    else:
        out.file.write(found.value.decode(errors="replace") + "\n")


@app.command()
def logs(
    ctx: typer.Context, member: str, spec_file: SpecOption = None,
    cluster: ClusterOption = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="how many lines")] = 50,
) -> None:
    """Show the last lines of a member's etcd log."""
    tail = keys.logs(_target(ctx, spec_file, cluster), member, lines)
    _session(ctx).out.file.write("".join(line + "\n" for line in tail))


def main(
    argv: Sequence[str],
    environ: Mapping[str, str],
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one dcsctl command; return its exit code. Tests call this in-process."""
    out = Console(file=stdout or sys.stdout, soft_wrap=True, width=200)
    err = Console(file=stderr or sys.stderr, soft_wrap=True)
    session = Session(Context(environ=environ, progress=report.ConsoleProgress(err)), out, err)
    session.debug = "--debug" in argv
    command = typer.main.get_command(app)
    try:
        result = command.main(args=list(argv), prog_name="dcsctl", obj=session,
                              standalone_mode=False)
        code = int(result) if isinstance(result, int) else ExitCode.OK
    except DcsctlError as error:
        for line in report.error_lines(error):
            err.print(line, highlight=False, markup=False)
        if session.debug:
            err.print(traceback.format_exc(), markup=False)
        code = error.exit_code
    except typer.Exit as done:
        code = done.exit_code
    except typer.TyperException as usage:  # typer's (vendored click's) usage errors
        message = getattr(usage, "format_message", usage.__str__)()
        err.print(f"error: {message}", highlight=False, markup=False)
        err.print("fix: see `dcsctl --help` or `dcsctl COMMAND --help`", highlight=False)
        code = ExitCode.USAGE
    except (KeyboardInterrupt, typer.Abort):
        err.print("error: interrupted\nfix: run the same command again; it resumes",
                  highlight=False)
        code = ExitCode.INTERRUPTED
    except Exception as unexpected:  # the one handler: no traceback unless --debug
        err.print(f"error: unexpected {type(unexpected).__name__}: {unexpected}",
                  highlight=False, markup=False)
        if session.debug:
            err.print(traceback.format_exc(), markup=False)
        err.print("fix: run again with --debug and report the traceback", highlight=False)
        code = ExitCode.FAILED
    for warning in session.warnings:
        err.print(f"warning: {warning}", highlight=False, markup=False)
    return int(code)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main(sys.argv[1:], os.environ))
