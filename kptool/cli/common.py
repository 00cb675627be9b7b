"""Helpers shared by the CLI sub-commands: output, progress bars, devices, errors."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

from rich.console import Console
from rich.markup import escape
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
    """A status line on stderr; never wrapped (paths stay whole when stderr is a file or pipe)."""
    if not quiet:
        console.print(message, highlight=False, soft_wrap=True)


def error_line(message: str) -> None:
    """``error: message`` as one line on stderr; the message is text, not rich markup."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


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


def report_failures(failures: list[dict[str, str]], what: str, listed_in, quiet: bool = False) -> None:
    """List a run's failed inputs (the first 10) and end with exit code ``EXIT_SOME_FAILED`` when any."""
    list_failures(failures, what, listed_in, quiet)
    exit_if_failed(failures)


def list_failures(failures: list[dict[str, str]], what: str, listed_in, quiet: bool = False) -> None:
    """Print how many inputs failed, where they are listed, and the first 10 reasons."""
    if failures:
        where = f" (listed in {listed_in})" if listed_in is not None else ""
        info(f"[yellow]{len(failures)} {what} failed[/]{where}:", quiet)
        for f in failures[:10]:
            info(f"  {escape(f['error'])}", quiet)
        if len(failures) > 10:
            info(f"  ... and {len(failures) - 10} more", quiet)


def exit_if_failed(failures: list) -> None:
    """Exit with ``EXIT_SOME_FAILED`` (3) when a folder run finished with failed inputs."""
    import typer

    from kptool.failures import EXIT_SOME_FAILED

    if failures:
        raise typer.Exit(EXIT_SOME_FAILED)


@contextmanager
def show_warnings(quiet: bool = False) -> Iterator[None]:
    """Print :class:`~kptool.errors.InputWarning` as ``warning: <file>: <what>`` lines, each time it happens."""
    import warnings

    from kptool.errors import InputWarning

    with warnings.catch_warnings():
        previous = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, InputWarning):
                info(f"[yellow]warning:[/] {escape(str(message))}", quiet)
            else:
                previous(message, category, filename, lineno, file, line)

        warnings.simplefilter("always", InputWarning)
        warnings.showwarning = show
        yield


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
