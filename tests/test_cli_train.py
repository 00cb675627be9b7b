"""`kptool train` on the command line: flags, overrides, resume, Ctrl-C and NaN exits."""

from __future__ import annotations

import json

import pytest
import yaml

from kptool.cli.main import main

from test_train_helpers import TinyKeypoints, fresh_hooks, make_dataset, reset_hooks, tiny_config  # noqa: F401 (fresh_hooks: autouse fixture)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = make_dataset(root / "data")
    preset = root / "tiny.yaml"
    preset.write_text(yaml.safe_dump(tiny_config()))
    return data, preset


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_flags_and_overrides_reach_the_saved_config(setup, tmp_path, capsys):
    data, preset = setup
    run = tmp_path / "run"
    code, out, err = run_cli(["train", "--preset", preset, "--data", data, "--out", run, "--epochs", 2,
                              "--lr", 0.02, "--keypoints", 4, "--seed", 3, "--batch-size", 2,
                              "--set", "train.val_every=2", "--set", "model.width=6", "--device", "cpu",
                              "--json", "--quiet"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["epochs"] == 2 and summary["steps"] == 8 and summary["best"]["metric"] == "das"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["epochs"] == 2 and cfg["train"]["lr"] == 0.02 and cfg["train"]["seed"] == 3
    assert cfg["train"]["batch_size"] == 2 and cfg["train"]["val_every"] == 2
    assert cfg["model"] == {"name": "test-tiny", "num_keypoints": 4, "width": 6}
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert "val" not in log[0] and "val" in log[1]            # validated every 2 epochs

    # continue for one more epoch
    code, out, err = run_cli(["train", "--resume", "--out", run, "--epochs", 3, "--quiet"], capsys)
    assert code == 0, err
    assert len((run / "log.jsonl").read_text().splitlines()) == 3


def test_train_refuses_a_non_empty_run_folder(setup, tmp_path, capsys):
    data, preset = setup
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "x").write_text("x")
    code, _, err = run_cli(["train", "-p", preset, "-d", data, "-o", tmp_path / "run", "-q"], capsys)
    assert code == 2 and "not empty" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--set", "train.epoch=3"], "unknown train key 'epoch'"),
    (["--set", "lr"], "expected section.key=value"),
    (["--batch-size", "0"], "train.batch_size must be at least 1"),
    (["--set", "model.depth=3"], "model 'test-tiny'"),
])
def test_train_bad_options_are_one_line_errors(setup, tmp_path, capsys, args, message):
    data, preset = setup
    code, _, err = run_cli(["train", "-p", preset, "-d", data, "-o", tmp_path / "run", "-q", *args], capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_train_needs_preset_and_data(setup, tmp_path, capsys):
    code, _, err = run_cli(["train", "-o", tmp_path / "run"], capsys)
    assert code == 2 and "--preset is required" in err
    code, _, err = run_cli(["train", "--resume", "-o", tmp_path / "run"], capsys)
    assert code == 2 and "no such checkpoint file" in err


def test_ctrl_c_exits_130_with_resume_hint_and_nan_exits_2(setup, tmp_path, capsys):
    data, preset = setup
    TinyKeypoints.sigint_at_call = 2
    code, _, err = run_cli(["train", "-p", preset, "-d", data, "-o", tmp_path / "a", "--device", "cpu"], capsys)
    assert code == 130
    assert "kptool train --resume --out" in err
    reset_hooks()
    code, _, err = run_cli(["train", "--resume", "-o", tmp_path / "a", "-q"], capsys)
    assert code == 0, err

    reset_hooks()
    TinyKeypoints.nan_at_call = 1
    code, _, err = run_cli(["train", "-p", preset, "-d", data, "-o", tmp_path / "b", "-q"], capsys)
    assert code == 2 and "loss became non-finite" in err and "no checkpoint was saved yet" in err
