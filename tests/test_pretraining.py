"""Self-supervised pre-training (paper 003): pretext models, probe metrics, features, fine-tuning."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kptool.cli.main import main
from kptool.core.shape import Shape
from kptool.errors import InputError, KptoolError
from kptool.metrics import METRICS, EvalContext
from kptool.models import build_model
from kptool.probe import read_features

SMALL_POINTNET = {"name": "pointnet", "input_transform": False, "local_widths": [32], "global_widths": [32, 64],
                  "head_widths": [32]}


def blobs(batch: int, n: int, seed: int) -> torch.Tensor:
    """Clouds of four tight, well separated blobs: a mixture of 4 fits them far better than 1."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.6, 0, 0], [-0.6, 0, 0], [0, 0.6, 0], [0, -0.6, 0.0]])
    which = torch.arange(n) % 4
    return centres[which][None] + 0.03 * torch.randn(batch, n, 3, generator=g)


def fit(model, batch: dict, steps: int, lr: float = 0.01) -> tuple[dict, dict]:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    first = model.training_loss(batch)[1]
    for _ in range(steps):
        opt.zero_grad()
        model.training_loss(batch)[0].backward()
        opt.step()
    return first, model.training_loss(batch)[1]


def test_parae_training_lowers_the_mixture_nll():
    torch.manual_seed(0)
    model = build_model({"name": "pretext", "backbone": SMALL_POINTNET, "loss": {"name": "gmm-nll", "partitions": 4}})
    batch = {"points": blobs(4, 256, 0)}
    first, last = fit(model, batch, 60)
    assert last["nll"] < first["nll"] - 1.0
    out = model.predict(batch)
    assert out["global_features"].shape == (4, 64) and out["point_logits"].shape == (4, 256, 4)


def test_jigsaw_training_raises_cell_accuracy():
    torch.manual_seed(0)
    model = build_model({"name": "pretext", "backbone": SMALL_POINTNET,
                         "loss": {"name": "jigsaw3d", "cells_per_axis": 2}})
    batch = {"points": torch.rand(4, 256, 3, generator=torch.Generator().manual_seed(1))}
    first, last = fit(model, batch, 80)
    assert model.predict(batch)["point_logits"].shape == (4, 256, 8)
    # chance is 1/8; cells of uniform noise carry only their edges as cues, so the gain is modest
    assert last["cell_accuracy"] > first["cell_accuracy"] + 0.08 and last["loss"] < first["loss"] - 0.05


def test_classifier_learns_two_separable_classes():
    torch.manual_seed(0)
    model = build_model({"name": "classifier", "num_classes": 2, "backbone": SMALL_POINTNET, "widths": [16]})
    g = torch.Generator().manual_seed(0)
    flat = torch.rand(4, 128, 3, generator=g) * torch.tensor([2.0, 0.1, 2.0])
    tall = torch.rand(4, 128, 3, generator=g) * torch.tensor([0.1, 2.0, 0.1])
    batch = {"points": torch.cat([flat, tall]), "class_label": torch.tensor([0] * 4 + [1] * 4)}
    first, last = fit(model, batch, 40)
    assert last["loss"] < 0.5 * first["loss"]
    assert (model.predict(batch)["class_logits"].argmax(-1) == batch["class_label"]).all()
    with pytest.raises(KptoolError, match="num_classes"):
        model.training_loss({**batch, "class_label": torch.tensor([5] * 8)})


def shapes_with(categories: list[str]) -> list[Shape]:
    return [Shape(points=np.zeros((1, 3), np.float32), id=f"s{i}", category=c) for i, c in enumerate(categories)]


def test_svm_cv_metric_known_answers():
    metric = METRICS.build({"name": "svm-cv", "folds": 3})
    cats = ["a"] * 6 + ["b"] * 6 + ["c"]             # 'c' has one shape: left out
    feats = [np.array([0.0, 5.0]) + 0.1 * i for i in range(6)] + [np.array([5.0, 0.0]) + 0.1 * i for i in range(6)]
    ctx = EvalContext(None, shapes_with(cats), {"global_features": feats + [np.array([9.0, 9.0])]})
    result = metric.compute(ctx)
    assert result["accuracy"] == 1.0 and result["classes"] == ["a", "b"] and result["num_shapes"] == 12
    assert metric.scalars(result) == {"svm_cv_accuracy": 1.0}
    # identical features for both classes: 3-fold CV of a 2-class balanced set cannot beat chance on average
    same = EvalContext(None, shapes_with(["a", "b"] * 6), {"global_features": [np.ones(2)] * 12})
    assert metric.compute(same)["accuracy"] <= 0.5 + 1e-9
    with pytest.raises(KptoolError, match="two classes"):
        metric.check(EvalContext(None, shapes_with(["a"] * 4), {"global_features": [np.ones(2)] * 4}))


def test_class_accuracy_metric_hand_case():
    metric = METRICS.build({"name": "class-accuracy"})
    ctx = EvalContext(SimpleNamespace(class_names=["bed", "chair"]), shapes_with(["bed", "bed", "chair", "chair"]),
                      {"class_logits": [np.array([2.0, 0]), np.array([0, 1.0]), np.array([0, 3.0]),
                                        np.array([0, 1.0])]})
    result = metric.compute(ctx)
    assert result["accuracy"] == 0.75 and result["per_class"] == {"bed": 0.5, "chair": 1.0}
    assert metric.scalars(result)["mean_class_accuracy"] == 0.75


def test_label_subset_is_stratified_and_seeded(tmp_path):
    from kptool.data.class_sources import SyntheticSetSource
    from kptool.data.prepare import PrepareOptions, run_prepare
    from kptool.data.prepared import PreparedDataset
    from kptool.train.finetune import label_subset

    run_prepare(SyntheticSetSource(("mug", "table"), 10), tmp_path / "d", PrepareOptions(points=32, oversample=2,
                                                                                          split_fractions=(1, 0, 0)))
    train = PreparedDataset(tmp_path / "d", "train")
    sub = label_subset(train, 0.2, seed=0)
    assert sorted(r["category"] for r in sub.records) == ["mug", "mug", "table", "table"]
    assert sub.ids == label_subset(train, 0.2, seed=0).ids != label_subset(train, 0.2, seed=1).ids
    assert [sub[i].id for i in range(len(sub))] == sub.ids and label_subset(train, 1.0, 0) is train
    assert len(label_subset(train, 0.01, 0)) == 2             # at least one per class


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_pretrain_features_probe_and_finetune_through_the_cli(tmp_path, capsys):
    data = tmp_path / "set"
    run(capsys, "prepare", "synthetic", "-c", "mug,table", "-n", "8", "--points", "128", "-o", data,
        "--splits", "0.5,0.25,0.25", "-q")
    small = ["--set", "model.backbone.input_transform=false", "--set", "data.points=128", "--batch-size", "4"]
    pre = tmp_path / "parae"
    run(capsys, "train", "-p", "parae-pointnet", "--data", data, "--out", pre, "--epochs", "2",
        "--set", "model.loss.partitions=8", "--set", "train.val_every=1", *small, "-q")
    log = [json.loads(line) for line in (pre / "log.jsonl").read_text().splitlines()]
    assert "svm_cv_accuracy" in log[-1]["val"] and "nll" in log[-1]["val"]

    run(capsys, "features", data, "--checkpoint", pre, "-o", tmp_path / "f.npz", "--mixtures", tmp_path / "m.png",
        "-q")
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    fs = read_features(tmp_path / "f.npz")
    assert fs.features.shape == (16, 1024) and fs.classes == ["mug", "table"]
    assert [fs.classes[label] for label in fs.labels] == ["mug"] * 8 + ["table"] * 8
    assert fs.meta["model"] == "pretext" and fs.splits.count("train") == 8
    report = json.loads(run(capsys, "eval", "svm", tmp_path / "f.npz", "--no-tsne", "--json"))
    assert report["test_size"] == 4 and 0 <= report["accuracy"] <= 1

    # random weights of the same preset: same file layout, different features
    run(capsys, "features", data, "--preset", "parae-pointnet", "--seed", "3", "-o", tmp_path / "r.npz", "-q")
    assert main(["features", str(data), "--preset", "parae-pointnet", "-o", str(tmp_path / "x.npz"), "--mixtures",
                 str(tmp_path / "x.png")]) == 2 and not (tmp_path / "x.npz").exists()
    assert not np.allclose(read_features(tmp_path / "r.npz").features, fs.features)

    # fine-tuning starts from exactly the pre-trained backbone
    fine = tmp_path / "fine"
    run(capsys, "train", "-p", "classify-pointnet", "--data", data, "--out", fine, "--init", pre, "--epochs", "1",
        "--lr", "0", "--set", "model.num_classes=2", *small, "-q")
    from kptool.train import load_checkpoint

    a, b = load_checkpoint(pre / "checkpoints" / "last.pt")["model"], load_checkpoint(fine / "checkpoints" /
                                                                                       "last.pt")["model"]
    for k, v in a.items():
        if k.startswith("backbone.") and v.is_floating_point() and "running" not in k:
            torch.testing.assert_close(b[k], v)
    hist = [json.loads(line) for line in (fine / "log.jsonl").read_text().splitlines()]
    assert "class_accuracy" in hist[-1]["val"]


def test_init_refuses_a_backbone_that_does_not_fit(tmp_path):
    from kptool.train.finetune import init_backbone

    model = build_model({"name": "classifier", "num_classes": 2, "backbone": SMALL_POINTNET})
    other = build_model({"name": "pretext", "backbone": {"name": "pointnet", "input_transform": False}})
    from kptool.train.checkpoint import VERSION, WEIGHTS_FORMAT

    torch.save({"format": WEIGHTS_FORMAT, "version": VERSION, "config": {"model": {"name": "pretext"}},
                "model": other.state_dict()}, tmp_path / "x.pt")
    with pytest.raises(InputError, match="does not fit"):
        init_backbone(model, tmp_path / "x.pt")
    torch.save({"format": WEIGHTS_FORMAT, "version": VERSION, "config": {"model": {"name": "pretext"}},
                "model": {}},
               tmp_path / "y.pt")
    with pytest.raises(InputError, match="no backbone weights"):
        init_backbone(model, tmp_path / "y.pt")


@pytest.mark.parametrize("model", [{"name": "pretext", "loss": {"name": "gmm-nll"}},
                                   {"name": "classifier", "num_classes": 3}])
def test_pointnet2_backbones_get_the_coordinates_as_features(model):
    """PointNet++ sees only offsets to its centres: with in_channels 3 the models hand it the
    coordinates, so a translated cloud gets a different global feature (it would be equal without)."""
    torch.manual_seed(0)
    net = build_model({**model, "backbone": {"name": "pointnet2-ssg", "in_channels": 3}}).eval()
    points = torch.rand(2, 256, 3) * 2 - 1
    with torch.no_grad():
        a = net.infer({"points": points})["global_features"]
        b = net.infer({"points": points + torch.tensor([0.5, 0.0, 0.0])})["global_features"]
    assert torch.isfinite(a).all()
    assert (a - b).abs().max() > 1e-3 * a.abs().max()
