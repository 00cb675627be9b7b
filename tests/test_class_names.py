"""A classifier's classes come from its training data, are recorded, and name its predictions."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from kptool.cli.main import main
from kptool.errors import KptoolError
from kptool.metrics import METRICS, EvalContext
from kptool.models import build_model

SMALL = ["--set", "model.backbone.input_transform=false", "--set", "data.points=128", "--batch-size", "4",
         "--epochs", "1", "-q"]


def run(capsys, *args) -> str:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_class_accuracy_matches_scores_to_classes_by_name():
    metric = METRICS.build({"name": "class-accuracy"})
    shapes = [SimpleNamespace(category=c) for c in ("chair", "chair", "lamp")]
    dataset = SimpleNamespace(class_names=["chair", "lamp"])
    # the model's classes are (bed, chair, lamp): score j is class j of the model, not of the dataset
    logits = [np.array([0, 5.0, 0]), np.array([5.0, 0, 0]), np.array([0, 0, 5.0])]
    result = metric.compute(EvalContext(dataset, shapes, {"class_logits": logits},
                                        class_names=["bed", "chair", "lamp"]))
    assert result["accuracy"] == pytest.approx(2 / 3) and result["per_class"] == {"chair": 0.5, "lamp": 1.0}
    with pytest.raises(KptoolError, match="3 class scores per shape for 2 classes"):
        metric.compute(EvalContext(dataset, shapes, {"class_logits": logits}))


def test_classifier_needs_a_class_count_or_names():
    with pytest.raises(KptoolError, match="auto"):
        build_model({"name": "classifier"})
    model = build_model({"name": "classifier", "num_classes": "auto", "class_names": ["a", "b", "c"]})
    assert model.num_classes == 3 and model.class_names == ["a", "b", "c"]
    with pytest.raises(KptoolError, match="2 class_names for num_classes=3"):
        build_model({"name": "classifier", "num_classes": 3, "class_names": ["a", "b"]})


def test_classify_preset_takes_the_data_classes_and_names_its_predictions(tmp_path, capsys):
    data = tmp_path / "set"
    run(capsys, "prepare", "synthetic", "-c", "table,mug,chair", "-n", "4", "--points", "128", "-o", data,
        "--splits", "0.5,0.25,0.25", "-q")
    run(capsys, "train", "-p", "classify-pointnet", "--data", data, "--out", tmp_path / "c", *SMALL)
    from kptool.train import load_checkpoint

    model_cfg = load_checkpoint(tmp_path / "c" / "checkpoints" / "last.pt")["config"]["model"]
    assert model_cfg["num_classes"] == 3 and model_cfg["class_names"] == ["chair", "mug", "table"]

    run(capsys, "detect", data, "--checkpoint", tmp_path / "c", "--kind", "class_logits", "--out", tmp_path / "p.json")
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["class_names"] == ["chair", "mug", "table"]
    scores = np.load(tmp_path / "p.npz")
    for rec in doc["shapes"]:
        assert rec["class"] == doc["class_names"][int(np.argmax(scores[rec["array"]]))]
    report = json.loads(run(capsys, "eval", "class-accuracy", tmp_path / "p.json", "--data", data, "--json"))
    assert 0 <= report["metrics"]["class-accuracy"]["accuracy"] <= 1

    # a class count that does not fit the data: one line before anything is written
    assert main(["train", "-p", "classify-pointnet", "--data", str(data), "--out", str(tmp_path / "bad"),
                 "--set", "model.num_classes=10", *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert "has 3 classes (chair, mug, table) but model.num_classes is 10" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bad").exists()
