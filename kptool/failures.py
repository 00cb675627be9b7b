"""Runs over many inputs go on past a bad one: the record of what failed and why.

Every folder command (``kptool prepare ...``, ``kptool prepare geodesics``,
``kptool detect FOLDER``) collects its failures here, lists them in its summary,
writes them to ``failures.json`` beside its output and ends with exit code
:data:`EXIT_SOME_FAILED`; ``strict`` makes the first failure fatal instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from kptool.errors import KptoolError

FAILURES_FILE = "failures.json"
EXIT_SOME_FAILED = 3   # the run finished, but some inputs failed (listed in failures.json)


@dataclass
class Failures:
    """Failed inputs of one run, each ``{"id", "source", "error"}`` (``error`` names the file).

    Attributes:
        strict: :meth:`add` raises :class:`KptoolError` on the first failure.
        records: the failures in the order they happened.
    """

    strict: bool = False
    records: list[dict[str, str]] = field(default_factory=list)

    def add(self, id: str, source: str | os.PathLike, error: str) -> None:
        """Record one failure (or raise it when ``strict``)."""
        source = os.fspath(source)
        message = error if error.startswith(source) else f"{source}: {error}"
        if self.strict:
            raise KptoolError(message)
        self.records.append({"id": id, "source": source, "error": message})

    def __len__(self) -> int:
        return len(self.records)

    def to_json(self) -> str:
        return json.dumps(self.records, indent=1)

    def write(self, path: str | os.PathLike, overwrite: bool = True) -> Path:
        """Write the list atomically to ``path`` (usually ``<output folder>/failures.json``)."""
        from kptool.io.atomic import write_text

        return write_text(path, self.to_json(), overwrite=overwrite)
