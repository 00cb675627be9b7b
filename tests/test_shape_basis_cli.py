"""Paper 001 through the command line: the four presets train, detect with details, and evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kptool.cli.main import main
from kptool.io.predictions import Predictions, read_predictions, write_predictions

SMALL = ["--epochs", "1", "--batch-size", "4", "--set", "data.points=256", "--set", "model.num_keypoints=6"]


def run_cli(args, capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def chairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sb") / "chairs"
    assert main(["prepare", "synthetic", "--category", "chair", "--count", "12", "--points", "256",
                 "--normalize", "fernandez", "--splits", "0.5,0,0.5", "--out", str(root), "-q"]) == 0
    return root


@pytest.fixture(scope="module")
def runs(chairs, tmp_path_factory):
    out = {}
    for preset, extra in (("symmetric-basis", ["--set", "model.num_basis=3"]), ("usip", [])):
        run = tmp_path_factory.mktemp("runs") / preset
        assert main(["train", "--preset", preset, "--data", str(chairs), "--out", str(run), "-q", *SMALL, *extra]) == 0
        assert main(["detect", str(chairs), "--checkpoint", str(run), "--out", str(run / "test.json"), "-q"]) == 0
        out[preset] = run
    return out


def test_detect_writes_the_details(runs):
    preds = read_predictions(runs["symmetric-basis"] / "test.json")
    assert preds.ordered and preds.num_keypoints == 6
    for sid, kp in preds.keypoints.items():
        d = preds.details[sid]
        assert d["nodes"].shape == (6, 3) and d["symmetry_normal"].shape == (3,) and d["angle"].shape == ()
        assert abs(np.linalg.norm(d["symmetry_normal"]) - 1) < 1e-5 and abs(d["symmetry_normal"][1]) < 1e-6
        assert 1 <= len(d["merged"]) <= 6 and d["merged"].shape[1] == 3
    usip = read_predictions(runs["usip"] / "test.json")
    assert not usip.ordered
    for sid, d in usip.details.items():
        assert d["sigma"].shape == (6,) and (d["sigma"] > 0).all() and 1 <= len(d["kept"]) <= 6


def test_properties_evaluate_and_say_what_does_not_apply(runs, chairs, capsys):
    sb = runs["symmetric-basis"] / "test.json"
    for metric in ("coverage", "model-error", "correspondence", "inclusivity", "symmetry-error", "definition"):
        rc, out, err = run_cli(["eval", metric, sb, "--data", chairs, "--json", "--out", sb.parent / "e"], capsys)
        assert rc == 0, err
        value = json.loads(out)["metrics"][metric]["value"]
        assert np.isfinite(value)
        if metric in ("coverage", "inclusivity", "correspondence", "model-error"):
            assert 0.0 <= value <= 1.0 or metric == "model-error"
    rc, out, err = run_cli(["eval", "inclusivity", sb, "--data", chairs, "--json", "--out", sb.parent / "i"], capsys)
    alone = json.loads(out)["metrics"]["inclusivity"]["value"]
    rc, out, err = run_cli(["eval", "all", sb, "--data", chairs, "--json", "--out", sb.parent / "a"], capsys)
    assert rc == 0, err
    assert json.loads(out)["metrics"]["inclusivity"]["value"] == alone     # eval all's --threshold is mIoU's
    usip = runs["usip"] / "test.json"
    rc, _, err = run_cli(["eval", "model-error", usip, "--data", chairs, "--out", usip.parent / "e"], capsys)
    assert rc == 2 and "needs the nodes" in err
    rc, out, err = run_cli(["eval", "all", usip, "--data", chairs, "--json", "--out", usip.parent / "all"], capsys)
    assert rc == 0, err
    report = json.loads(out)
    assert "coverage" in report["metrics"] and "symmetry-error" in report["skipped"]


def test_registration_curve_through_the_cli(runs, chairs, capsys):
    run = runs["symmetric-basis"]
    rc, out, err = run_cli(["eval", "registration", "--checkpoint", run, "--data", chairs, "--angles", "0,45",
                            "--templates", "2", "--json", "--out", run / "reg"], capsys)
    assert rc == 0, err
    result = json.loads(out)["metrics"]["registration"]
    assert result["angles"] == [0.0, 45.0] and len(result["templates"]) == 2
    assert (run / "reg" / "registration.csv").read_text().startswith("misalignment_deg,mean_error_deg")
    rc, _, err = run_cli(["eval", "registration", "--checkpoint", runs["usip"], "--data", chairs,
                          "--out", run / "reg2"], capsys)
    assert rc == 2 and "ordered" in err


@pytest.mark.parametrize("preset", ["symmetric-basis-deform", "symmetric-basis-nosym"])
def test_the_other_modes_train(preset, chairs, tmp_path):
    assert main(["train", "--preset", preset, "--data", str(chairs), "--out", str(tmp_path / preset), "-q",
                 *SMALL, "--set", "model.num_basis=3"]) == 0
    assert (tmp_path / preset / "checkpoints" / "last.pt").is_file()


def test_details_round_trip_through_the_predictions_file(tmp_path):
    preds = Predictions({"a": np.zeros((2, 3), np.float32)},
                        details={"a": {"symmetry_normal": np.array([1.0, 0, 0]), "angle": np.array(0.5)}})
    back = read_predictions(write_predictions(tmp_path / "p.json", preds))
    np.testing.assert_allclose(back.details["a"]["symmetry_normal"], [1.0, 0, 0])
    assert back.details["a"]["angle"] == 0.5
    doc = json.loads((tmp_path / "p.json").read_text())
    doc["shapes"][0]["details"] = {"angle": "x"}
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    from kptool.errors import InputError

    with pytest.raises(InputError, match="detail 'angle'"):
        read_predictions(tmp_path / "bad.json")
