"""The command line: parse, call one use case, render its result. The only place that
prints or exits, and the one error handler (tracebacks only with --debug)."""

from __future__ import annotations

import gc
import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import TextIO

import typer
from rich.console import Console

from dcsctl import report
from dcsctl.cli.common import Session, app
from dcsctl.errors import DcsctlError, ExitCode
from dcsctl.ops.context import Context

__all__ = ["COMMAND_MODULES", "app", "main", "run"]

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
    flow_help(app)


def flow_help(commands: typer.Typer) -> None:
    """Each command's help is its docstring with the source's line breaks taken out of
    the paragraphs: rich wraps the text to the terminal, and the command list shows the
    whole first paragraph instead of stopping at the docstring's first line break."""
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


def main(
    argv: Sequence[str],
    environ: Mapping[str, str],
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one dcsctl command; return its exit code. Tests call this in-process."""
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
        # click turns an EOFError raised anywhere into Abort: that is a bug, not Ctrl-C.
        if isinstance(stop.__cause__, EOFError):
            err.print(f"error: unexpected EOFError: {stop.__cause__}", highlight=False,
                      markup=False)
            err.print("fix: run again with --debug and report the traceback", highlight=False)
            code = ExitCode.FAILED
        else:
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
    finally:
        session.context.close()
    for warning in session.warnings:
        err.print(f"warning: {warning}", highlight=False, markup=False)
    return int(code)


def run() -> None:
    """Console-script entry point."""
    code = main(sys.argv[1:], os.environ)
    # The process ends here: spare the interpreter's final garbage collections a walk
    # through everything the imports built (grpc, protobuf, pydantic), ~0.08 s per run.
    gc.freeze()
    sys.exit(code)
