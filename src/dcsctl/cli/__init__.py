"""The command line: parse, call one use case, render its result. The only place that
prints or exits, and the one error handler (tracebacks only with --debug)."""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys

from dcsctl.cli import quick
from dcsctl.errors import DcsctlError, ExitCode

TYPE_CHECKING = False  # typing itself costs milliseconds; mypy knows this name
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import TextIO

    import typer
    from rich.console import Console

# typer, rich, the spec (pydantic) and the use cases are imported by `main()`, not here:
# `run()` first offers the command to its quick path (cli/quick.py), which needs none.
__all__ = ["COMMAND_MODULES", "app", "main", "run"]


def __getattr__(name: str) -> object:
    if name == "app":  # the typer app, for whoever asks dcsctl.cli for it
        from dcsctl.cli.common import app

        return app
    raise AttributeError(name)

# The module under dcsctl.cli that registers each top-level command. A run imports only
# the one it needs: each module pulls in its use cases (deployment, certificates, checks,
# Patroni), and importing them all costs a short command like `backup` ~0.1 s. Any other
# first word (--help, a typo, a command not listed here) imports every module, in the
# order `--help` shows them (set up, look, protect, change, Patroni); `--version` none.
COMMAND_MODULES = {
    "backup": "backup", "restore": "backup", "state": "state",
    "check": "checks",
    "init": "cluster", "up": "cluster", "preflight": "cluster", "down": "cluster",
    "destroy": "cluster", "status": "cluster", "env": "cluster", "put": "cluster",
    "get": "cluster", "logs": "cluster",
    "member": "operate", "certs": "operate", "maintenance": "operate", "restart": "operate",
    "upgrade": "operate", "downgrade": "operate",
    "patroni": "patroni",
    "monitoring": "monitoring",
}


HELP_ORDER = ("cluster", "checks", "monitoring", "backup", "state", "operate", "patroni")


def register_commands(argv: Sequence[str]) -> None:
    """Import the command modules `argv` needs (its first word that is not an option)."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command is None and "--version" in argv:
        return
    needed = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else HELP_ORDER
    for module in needed:
        importlib.import_module(f"dcsctl.cli.{module}")
    from dcsctl.cli.common import app, in_help_order

    in_help_order(app)
    flow_help(app)


def flow_help(commands: typer.Typer) -> None:
    """Each command's help is its docstring with the source's line breaks taken out of
    the paragraphs: rich wraps the text to the terminal, and the command list shows the
    whole first paragraph instead of stopping at the docstring's first line break."""
    import inspect

    for info in commands.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            info.help = flowed(inspect.getdoc(info.callback) or "")
    for group in commands.registered_groups:
        if group.typer_instance is not None:
            flow_help(group.typer_instance)


def flowed(text: str) -> str:
    """Paragraphs (blank-line separated) kept; the line breaks inside each joined."""
    return "\n\n".join(" ".join(line.strip() for line in paragraph.splitlines())
                       for paragraph in text.split("\n\n"))


def _stopped(stop: BaseException, err: Console) -> ExitCode:
    """Ctrl-C, or click's Abort: click turns an EOFError raised anywhere into Abort too,
    and that is a bug, not Ctrl-C."""
    if isinstance(stop.__cause__, EOFError):
        err.print(f"error: unexpected EOFError: {stop.__cause__}", highlight=False,
                  markup=False)
        err.print("fix: run again with --debug and report the traceback", highlight=False)
        return ExitCode.FAILED
    return ExitCode.INTERRUPTED


def main(
    argv: Sequence[str],
    environ: Mapping[str, str],
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one dcsctl command; return its exit code. Tests call this in-process."""
    import traceback

    import typer
    from rich.console import Console

    from dcsctl import report
    from dcsctl.cli.common import Session, app
    from dcsctl.ops.cluster import Context

    register_commands(argv)
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
        # A use case that failed notes what else went wrong on the way (add_note):
        # those are the run's warnings, said after the error.
        session.warnings.extend(getattr(error, "__notes__", ()))
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
    except (KeyboardInterrupt, typer.Abort) as stop:
        code = _stopped(stop, err)
    except Exception as unexpected:  # the one handler: no traceback unless --debug
        err.print(f"error: unexpected {type(unexpected).__name__}: {unexpected}",
                  highlight=False, markup=False)
        if session.debug:
            err.print(traceback.format_exc(), markup=False)
        err.print("fix: run again with --debug and report the traceback", highlight=False)
        code = ExitCode.FAILED
    finally:
        session.context.close()
    if code == ExitCode.INTERRUPTED:
        # typer turns a KeyboardInterrupt raised in a command into Exit(130), which
        # standalone_mode=False returns as 130: say it here, whichever way it came.
        err.print("error: interrupted\nfix: run the same command again; it resumes",
                  highlight=False)
    for warning in session.warnings:
        err.print(f"warning: {warning}", highlight=False, markup=False)
    return int(code)


def honour_ctrl_c() -> None:
    """Make Ctrl-C (SIGINT) raise KeyboardInterrupt, whatever the parent left it as.

    Python installs that handler only when SIGINT is at its default at start-up. A shell
    that starts a job in the background without job control (`cmd &` in a script, a CI
    runner, `nohup cmd &`) sets SIGINT to "ignore", exec keeps it, and Python then leaves it
    ignored: `check perf` ran its whole load on the DCS after SIGINT and exited 0, and a
    test suite started that way lost the Ctrl-C of `test_interrupted_perf_run_still_cleans_up`
    every time. dcsctl's long operations promise that Ctrl-C stops them and cleans up, so
    the process entry point claims SIGINT, as Go programs that call signal.Notify (etcdctl's
    own `check perf`) do. Not in `main()`: tests call it inside pytest's process.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run() -> None:
    """Console-script entry point (also `python -m dcsctl`)."""
    honour_ctrl_c()
    code = quick.run(sys.argv[1:], os.environ)
    if code is None:
        code = main(sys.argv[1:], os.environ)
    # The process ends here: spare the interpreter's final garbage collections a walk
    # through everything the imports built (grpc, protobuf, pydantic), ~0.08 s per run.
    gc.freeze()
    sys.exit(code)
