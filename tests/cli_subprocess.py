"""Run the INSTALLED ``kptool`` command as a user would: a subprocess, stdout and stderr apart.

The tests that use this catch what in-process calls of ``main()`` cannot: a missing dependency,
the console script itself, tracebacks printed by the interpreter, exit codes as the shell sees them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error:")]


def kptool_command() -> str:
    path = shutil.which("kptool")
    assert path is not None, "the kptool command is not installed (pip install -e .) or not on PATH"
    return path


def run_kptool(*args: str | os.PathLike, cwd: Path | None = None, timeout: float = 300) -> Result:
    """Run ``kptool ARGS`` with a wide, colourless, non-terminal environment; never raises on exit codes."""
    env = dict(os.environ, NO_COLOR="1", TERM="dumb", COLUMNS="80", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env.pop("FORCE_COLOR", None)
    p = subprocess.run([kptool_command(), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return Result(p.returncode, p.stdout, p.stderr)


def assert_clean_error(r: Result, *names: str) -> str:
    """Exit 2, exactly one ``error:`` line that names each of ``names``, no traceback, nothing on stdout."""
    assert "Traceback" not in r.err, r.err
    assert r.code == 2, f"exit {r.code}\n{r.err}"
    assert len(r.error_lines) == 1, r.err
    line = r.error_lines[0]
    for name in names:
        assert str(name) in line, f"{name!r} not named in: {line}"
    assert r.out == "", r.out
    return line
