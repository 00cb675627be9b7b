"""Helpers shared by the CLI sub-commands: output, progress bars, devices, errors."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


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
        console=console, disable=quiet, transient=transient,
    )
    with bar:
        yield bar
