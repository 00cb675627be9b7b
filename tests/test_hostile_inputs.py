"""The bad-input corpus (tests/hostile_corpus.py) through the installed ``kptool`` command.

Every case must end in exit code 2 with exactly one ``error:`` line that names the input, no
traceback, nothing on stdout, no output written, and no foreign code executed. The commands run
in parallel (each is a separate process that mostly waits on its imports); the per-case tests then
only read their results.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cli_subprocess import Result, run_kptool
from hostile_corpus import build_corpus

# Built at collection (the cases are the test parameters); removed at exit even when deselected.
_ROOT = Path(tempfile.mkdtemp(prefix="kptool-corpus-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
CORPUS = build_corpus(_ROOT)


@pytest.fixture(scope="module")
def results():
    started = time.perf_counter()
    workers = max(2, min(8, (os.cpu_count() or 2) + 1))
    with ThreadPoolExecutor(workers) as pool:
        done = dict(zip([c.id for c in CORPUS.cases], pool.map(lambda c: run_kptool(*c.args, cwd=_ROOT),
                                                                CORPUS.cases)))
    print(f"\nbad-input corpus: {len(CORPUS.kinds)} kinds, {len(CORPUS.cases)} commands "
          f"in {time.perf_counter() - started:.1f}s ({workers} at a time)")
    return done


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CORPUS.cases])
def test_bad_input_is_one_clean_error(case, results):
    r: Result = results[case.id]
    assert "Traceback" not in r.err, r.err[-3000:]
    assert r.code == 2, f"exit {r.code}: {r.err[-2000:]}"
    assert len(r.error_lines) == 1, r.err[-2000:]
    line = r.error_lines[0]
    for name in case.names:
        assert name in line, f"{name!r} not named in: {line}"
    assert r.out == "", r.out[:2000]
    for path in case.outputs:
        assert not path.exists(), f"{path} was written although the command failed"
    if case.unchanged is not None:
        folder, before = case.unchanged
        assert sorted(p.name for p in folder.rglob("*")) == before, "the run folder was changed"
    assert not CORPUS.marker.exists(), "a hostile payload executed code"


def test_corpus_is_large_enough():
    assert len(CORPUS.kinds) >= 148, len(CORPUS.kinds)
