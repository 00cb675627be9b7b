"""Write files so that a crash or Ctrl-C never leaves a half-written file behind.

Every writer in kptool goes through :func:`atomic_path`: it yields a temporary
path beside the target, and only when the block finishes without an exception is
the temporary file renamed over the target (``os.replace`` is atomic on POSIX and
Windows). Existing user files are only replaced with ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from kptool.errors import OutputError


def check_writable(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Raise :class:`OutputError` if ``path`` exists and ``overwrite`` is false."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputError(f"{p}: already exists (use --force to overwrite)")
    if p.exists() and p.is_dir():
        raise OutputError(f"{p}: is a folder, expected a file path")
    return p


def check_outputs(paths, overwrite: bool = False) -> list[Path]:
    """:func:`check_writable` for every output of a command, before it writes any of them."""
    return [check_writable(p, overwrite) for p in paths]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to ``path``.

    The temporary file keeps the target's suffix so libraries that pick a format
    from the extension (numpy, trimesh, matplotlib) behave the same.
    """
    target = check_writable(path, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str, overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def safe_join(root: str | os.PathLike, *parts: str) -> Path:
    """Join ``parts`` under ``root`` and refuse any result that escapes ``root``."""
    base = Path(root).resolve()
    out = base.joinpath(*parts).resolve()
    if out != base and base not in out.parents:
        raise OutputError(f"{Path(*parts)}: escapes the output folder {root}")
    return out
