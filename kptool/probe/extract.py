"""Global features of every shape of a prepared dataset, from a trained run or random weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from kptool.errors import KptoolError
from kptool.probe.features import FeatureSet


def model_from_preset(preset: str | os.PathLike, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    """A preset's model with random weights (seeded): the 'no pre-training' features."""
    from kptool.models import build_model
    from kptool.train import resolve_config

    config = resolve_config(str(preset), [f"train.seed={seed}"])
    torch.manual_seed(seed)
    return build_model(config["model"]), config


def extract_features(data: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                     preset: str | None = None, seed: int = 0, device: str = "auto",
                     batch_size: int = 16) -> FeatureSet:
    """The ``global_features`` of every shape of ``data`` (all splits), with ids, class labels and splits.

    The model is a run's (``checkpoint``: run folder or ``.pt``) or a preset's with random
    weights (``preset``, ``seed``); it predicts in eval mode (frozen BatchNorm statistics).
    """
    from kptool.data.prepared import PreparedDataset
    from kptool.detect.learned import load_detector
    from kptool.device import resolve_device
    from kptool.models.predict import predict_dataset

    if (checkpoint is None) == (preset is None):
        raise KptoolError("give either --checkpoint RUN (trained weights) or --preset NAME (random weights)")
    dev = resolve_device(device)
    if checkpoint is not None:
        model, source = load_detector(checkpoint, dev).model, {"checkpoint": str(Path(checkpoint).resolve())}
    else:
        model, config = model_from_preset(preset, seed)
        source = {"preset": config["name"], "random_seed": seed}
    if "global_features" not in model.outputs:
        raise KptoolError(f"model {model.model_name!r} has no global_features output (it predicts "
                          f"{', '.join(model.outputs)})")
    model = model.to(dev).eval()
    dataset = PreparedDataset(data)
    classes = dataset.class_names
    predicted = predict_dataset(model, dataset, dev, batch_size)["global_features"]
    feats = np.stack([predicted[i] for i in dataset.ids]) if len(dataset) else np.zeros((0, 0), np.float32)
    labels = [classes.index(r.get("category") or dataset.category or "") for r in dataset.records]
    meta = {"dataset": str(Path(data).resolve()), "model": model.model_name, "kind": "global_features", **source}
    return FeatureSet(feats, dataset.ids, np.array(labels, dtype=np.int64), classes,
                      [r["split"] for r in dataset.records], meta)
