"""The command line: parse, call one use case, render its result. The only place that
prints or exits, and the one error handler (tracebacks only with --debug)."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import TextIO

import typer
from rich.console import Console

from dcsctl import report
from dcsctl.cli import backup as _backup_commands  # noqa: F401  (registers commands)
from dcsctl.cli import checks as _check_commands  # noqa: F401  (registers commands)
from dcsctl.cli import cluster as _cluster_commands  # noqa: F401  (registers commands)
from dcsctl.cli import operate as _operate_commands  # noqa: F401  (registers commands)
from dcsctl.cli import patroni as _patroni_commands  # noqa: F401  (registers commands)
from dcsctl.cli.common import Session, app
from dcsctl.errors import DcsctlError, ExitCode
from dcsctl.ops.context import Context

__all__ = ["app", "main", "run"]


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
    sys.exit(main(sys.argv[1:], os.environ))
