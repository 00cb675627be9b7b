"""Helpers shared by the CLI sub-commands: output, progress bars, devices, errors."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


T = TypeVar("T")

console = Console(stderr=True)   # messages and progress go to stderr, results to stdout
stdout = Console()


class State:
    debug = False


def print_json(obj: Any) -> None:
    """Write ``obj`` as JSON on stdout (for scripts: ``--json``)."""
    sys.stdout.write(json.dumps(obj, indent=1, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(o: Any):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def info(message: str, quiet: bool = False) -> None:
    if not quiet:
        console.print(message, highlight=False)


@contextmanager
def progress_bar(quiet: bool = False, transient: bool = False) -> Iterator[Progress]:
    """A rich progress bar on stderr; disabled with ``--quiet`` or when stderr is no terminal."""
    bar = Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, disable=quiet or not console.is_terminal, transient=transient,
    )
    with bar:
        yield bar


def run_with_progress(description: str, quiet: bool, work: Callable[[Callable[[int, int, str], None]], T],
                      resume_hint: str) -> T:
    """Run ``work(report)`` under a progress bar; Ctrl-C prints ``resume_hint`` and exits 130.

    ``report(done, total, status)`` is the callback the library's long jobs take.
    """
    import typer

    with progress_bar(quiet) as bar:
        # Hidden until the job's first report, so that input errors are not preceded by an empty bar.
        task = bar.add_task(description, total=None, status="", visible=False)

        def report(done: int, total: int, status: str) -> None:
            bar.update(task, completed=done, total=total, status=status, visible=True)

        try:
            return work(report)
        except KeyboardInterrupt:
            console.print(f"interrupted: {resume_hint}", highlight=False)
            raise typer.Exit(130)


def print_table(title: str, columns: list[tuple[str, str]], rows: list[tuple[str, ...]]) -> None:
    """A table on stdout at its natural width, whatever the terminal's: the title is one line,
    cells are never wrapped or cut, so scripts and tests read the same text everywhere."""
    from rich.measure import Measurement
    from rich.table import Table

    table = Table()
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    stdout.print(title, soft_wrap=True, highlight=False, markup=False)
    wide = Console(width=10**5)
    width = Measurement.get(wide, wide.options, table).maximum
    # a console of exactly the table's width (colours as stdout's), whatever the terminal's
    Console(width=width, force_terminal=stdout.is_terminal, no_color=stdout.no_color).print(table)
