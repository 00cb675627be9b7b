"""Usage errors through the installed ``kptool`` command: one ``error:`` line, exit 2, no traceback.

They once all ended in ``ModuleNotFoundError: No module named 'click'`` (typer vendors click since
0.26), which only a subprocess of the installed command shows.
"""

from __future__ import annotations

import pytest

from cli_subprocess import assert_clean_error, run_kptool


def test_no_arguments_prints_the_help_and_exits_2():
    r = run_kptool()
    assert "Traceback" not in r.err, r.err
    assert r.code == 2
    assert "Usage" in r.out + r.err and "prepare" in r.out + r.err


def test_version():
    r = run_kptool("--version")
    assert r.code == 0 and r.out.startswith("kptool "), r.err


@pytest.mark.parametrize("args, names", [
    (["train"], ["--out"]),
    (["--bogus"], ["--bogus"]),
    (["detect", "x.ply", "--batch-size", "many"], ["--batch-size"]),
    (["train", "--out", "run", "--epochs", "three"], ["--epochs"]),
    (["prepare", "synthetic", "--out", "d"], ["--category"]),
    (["eval", "nonsense"], ["nonsense"]),
    (["info"], ["data"]),
])
def test_usage_error_is_one_line(args, names, tmp_path):
    line = assert_clean_error(run_kptool(*args, cwd=tmp_path), *names)
    assert "--help" in line
    assert not any(tmp_path.iterdir()), "a usage error wrote files"


def test_debug_shows_the_traceback_of_a_user_error(tmp_path):
    r = run_kptool("--debug", "info", tmp_path / "missing", cwd=tmp_path)
    assert r.code != 0 and "Traceback" in r.err
