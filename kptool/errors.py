"""User-facing errors.

Library code raises :class:`KptoolError` (or a subclass) for anything the user
can fix: a bad file, a bad option, an output folder in the way. The CLI prints
the message as one line and exits non-zero without a traceback (``--debug``
shows it). Programming errors stay ordinary exceptions.
"""

from __future__ import annotations

import os


class KptoolError(Exception):
    """An error the user can act on; ``str(err)`` is a complete one-line message."""


class InputError(KptoolError):
    """A file the user handed us is missing, unreadable or malformed."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class OutputError(KptoolError):
    """An output location cannot be used (exists, not empty, escapes the folder...)."""


class InputWarning(UserWarning):
    """A file was read, but part of it was skipped or it looks unlike what a model expects.

    The CLI prints these as ``warning: <file>: <what>`` lines.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
