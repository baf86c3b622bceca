"""How results look: etcdctl-like tables for people, JSON for scripts, progress on stderr.

Every command prints one `Output`: for people, its tables and lines in order; for scripts
(`--json`), one JSON document; and notes for people on stderr. `print_output` is the one
way to print it (patronictl's `print_output(columns, rows, fmt)`), and `Listing` the one
way to show rows of a result as a table and as JSON records. The renderers, one per
result type, live in this package's modules by subject (cluster, backups, checks, changes,
patroni); each is imported only by the commands that need it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from rich import box
from rich.console import Console, RenderableType
from rich.table import Table

from dcsctl.errors import DcsctlError

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

    from dcsctl.workflow import Phase, PhaseOutcome

Row = TypeVar("Row")


def human_bytes(size: int) -> str:
    """Sizes as etcdctl prints them (decimal units: 20 kB, 84 MB)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}".replace(
                ".0 ", " "
            )
        value /= 1000
    raise AssertionError("unreachable")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], title: str = "") -> Table:
    """The one table look: etcdctl's `-w table` (boxed, numbers right-aligned)."""
    made = Table(title=title or None, box=box.SQUARE, title_justify="left",
                 title_style="bold")
    for header in headers:
        made.add_column(header, justify="right" if header.startswith(("IS ", "RAFT"))
                        else "left")
    for row in rows:
        made.add_row(*row)
    return made


@dataclass(frozen=True)
class Listing(Generic[Row]):
    """One kind of row shown two ways: a column per (header, cell) for people, and a JSON
    object per row for scripts (its fields need not be the columns: a script wants the
    path and the number, a person the short name and the unit)."""

    columns: tuple[tuple[str, Callable[[Row], str]], ...]
    record: Callable[[Row], dict[str, Any]]
    title: str = ""

    def table(self, rows: Iterable[Row]) -> Table:
        return table([header for header, _ in self.columns],
                     ([cell(row) for _, cell in self.columns] for row in rows), self.title)

    def records(self, rows: Iterable[Row]) -> list[dict[str, Any]]:
        return [self.record(row) for row in rows]


@dataclass(frozen=True)
class Verbatim:
    """Text written exactly as it is (a key's value, log lines, shell exports): no
    wrapping, no tab expansion."""

    text: str


Item = RenderableType | Verbatim  # a str is one line, printed without markup


@dataclass(frozen=True)
class Output:
    """What one command prints on stdout: `text` for people, `data` for `--json`, and
    `notes` (people only) on stderr."""

    text: tuple[Item, ...]
    data: object = None
    notes: tuple[str, ...] = ()


def print_output(output: Output, out: Console, err: Console, *, json_output: bool) -> None:
    """The one way a command prints its result."""
    if json_output:
        out.print_json(dump_json(output.data))
        return
    for item in output.text:
        if isinstance(item, Verbatim):
            out.file.write(item.text)
        elif isinstance(item, str):
            out.print(item, highlight=False, markup=False, emoji=False)
        else:
            out.print(item)
    for note in output.notes:
        err.print(note, highlight=False, markup=False, emoji=False)


def dump_json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False)


def error_lines(error: DcsctlError) -> list[str]:
    lines = [f"error: {error.message}"]
    lines += [f"  {detail}" for detail in error.details]
    if error.fix:
        lines.append(f"fix: {error.fix}")
    return lines


class ConsoleProgress:
    """Phase lines on stderr: `[pki] CA, member, admin and JWT keys — issued ...`."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._status: Any = None
        self._bar: tuple[RichProgress, TaskID] | None = None  # the bar and its one task

    def phase_started(self, phase: Phase) -> None:
        if self.console.is_terminal:
            self._status = self.console.status(f"[{phase.name}] {phase.summary} ...")
            self._status.start()

    def phase_finished(self, outcome: PhaseOutcome) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        mark = "[green]✓[/]" if outcome.changed else "[dim]=[/]"
        took = f" [dim]({outcome.seconds:.2f} s)[/]" if outcome.seconds >= 0.01 else ""
        self.console.print(
            f"{mark} [bold]\\[{outcome.name}][/] {outcome.summary} — {outcome.note}{took}",
            highlight=False,
        )

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def transfer(self, label: str, done: int, total: int | None) -> None:
        """A byte-count progress bar, shown only on a terminal."""
        if not self.console.is_terminal:
            return
        if self._bar is None:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), console=self.console, transient=True,
            )
            bar.start()
            self._bar = (bar, bar.add_task(label, total=total))
        bar, task = self._bar
        bar.update(task, completed=done, total=max(total or 0, done) or None)
        if total is not None and done >= total:
            bar.stop()
            self._bar = None
