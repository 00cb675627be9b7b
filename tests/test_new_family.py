"""A new method family end to end through the CLI, with one model class and one preset.

The model below lives only here: it declares an extra batch field (``point_labels``)
and a non-keypoint output (``point_logits``), and the unchanged training loop,
``kptool detect`` and ``kptool eval`` train it, predict with it and score it.
"""

from __future__ import annotations

import json

import numpy as np
import torch.nn.functional as F
import yaml
from torch import nn

from kptool.cli.main import main
from kptool.models import Model, register_model


@register_model("test-part-segmenter")
class TinyPartSegmenter(Model):
    """Per-point part labels from a point MLP (a test-only family)."""

    inputs = ("points", "point_labels")
    outputs = ("point_logits",)

    def __init__(self, num_parts: int = 5, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                 nn.Linear(width, num_parts))

    def infer(self, batch):
        return {"point_logits": self.net(batch["points"])}

    def training_loss(self, batch):
        logits = self.infer(batch)["point_logits"]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["point_labels"].reshape(-1))
        return loss, {"loss": loss.item()}


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_a_new_family_trains_predicts_and_is_evaluated_through_the_cli(tmp_path, capsys):
    data, runs = tmp_path / "chairs", tmp_path / "run"
    run(capsys, "prepare", "synthetic", "--category", "chair", "--count", "16", "--points", "256", "--out", data,
        "--splits", "0.5,0.25,0.25", "-q")
    preset = tmp_path / "segmenter.yaml"
    preset.write_text(yaml.safe_dump({
        "name": "segmenter", "model": {"name": "test-part-segmenter", "num_parts": 5},
        "train": {"epochs": 15, "batch_size": 4, "optimizer": "adam", "lr": 0.01, "optimizer_options": {},
                  "val_metrics": ["loss", "part-miou"], "best": {"metric": "part_miou", "mode": "max"}},
        "data": {"points": 256}}))
    run(capsys, "train", "--preset", preset, "--data", data, "--out", runs, "-q")
    history = [json.loads(line) for line in (runs / "log.jsonl").read_text().splitlines()]
    assert history[-1]["train"]["loss"] < 0.7 * history[0]["train"]["loss"]
    assert all("part_miou" in r["val"] and "das" not in r["val"] for r in history)

    run(capsys, "detect", data, "--checkpoint", runs, "--split", "test", "--out", tmp_path / "p.json", "-q")
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["kind"] == "point_logits" and doc["arrays"] == "p.npz" and (tmp_path / "p.npz").is_file()
    trained = json.loads(run(capsys, "eval", "part-miou", tmp_path / "p.json", "--data", data, "--json"))

    # the same model untrained, through the same commands: training must have raised the score
    untrained = tmp_path / "untrained"
    run(capsys, "train", "--preset", preset, "--data", data, "--out", untrained, "--epochs", "1", "--lr", "0", "-q")
    run(capsys, "detect", data, "--checkpoint", untrained, "--split", "test", "--out", tmp_path / "u.json", "-q")
    before = json.loads(run(capsys, "eval", "part-miou", tmp_path / "u.json", "--data", data, "--json"))
    score, chance = trained["metrics"]["part-miou"]["miou"], before["metrics"]["part-miou"]["miou"]
    assert trained["kind"] == "point_logits" and trained["num_shapes"] == 4
    assert score > chance + 0.15 and score > 0.5

    # the score is the library's: part IoU of the argmax, recomputed here from the NPZ
    from kptool.data.prepared import PreparedDataset

    ds = PreparedDataset(data, "test")
    with np.load(tmp_path / "p.npz") as z:
        logits = {rec["id"]: z[rec["array"]] for rec in doc["shapes"]}
    per_shape = []
    for shape in ds:
        pred, truth = logits[shape.id].argmax(-1), shape.point_labels
        ious = [1.0 if not np.any((truth == p) | (pred == p)) else
                np.sum((truth == p) & (pred == p)) / np.sum((truth == p) | (pred == p)) for p in (1, 2, 3, 4)]
        per_shape.append(np.mean(ious))
    assert abs(score - np.mean(per_shape)) < 1e-12
    # keypoint metrics do not apply to these predictions: one clear line
    code = main(["eval", "das", str(tmp_path / "p.json"), "--data", str(data)])
    err = capsys.readouterr().err
    assert code == 2 and "keypoint" in err and len(err.strip().splitlines()) == 1


def test_the_contract_is_checked_when_a_model_registers():
    import pytest

    from kptool.errors import KptoolError

    class UnknownField(Model):
        inputs = ("points", "colour")

    class UnknownOutput(Model):
        outputs = ("heatmaps",)

    with pytest.raises(KptoolError, match="unknown batch field 'colour'"):
        register_model("test-unknown-field")(UnknownField)
    with pytest.raises(KptoolError, match="outputs must be among"):
        register_model("test-unknown-output")(UnknownOutput)

    class WithExtras(Model):
        inputs = ("points", "extras/geodesic_keypoints")

    assert register_model("test-with-extras")(WithExtras) is WithExtras
