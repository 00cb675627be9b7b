"""Fine-tuning after pre-training: a backbone from another run, and a fraction of the labels.

``train.init: RUN`` (``kptool train --init RUN``) copies the ``backbone`` weights of a
run (its ``best.pt``, else ``last.pt``) or checkpoint into the new model before its first
step; the rest of the model (the classification head) starts from random weights.
``train.label_fraction: f`` trains on a seeded, class-stratified fraction of the train
split (at least one shape per class), as in the paper's semi-supervised rows.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict

import numpy as np
from torch import nn

from kptool.errors import InputError, KptoolError

PREFIX = "backbone."


def init_backbone(model: nn.Module, run_or_checkpoint: str | os.PathLike) -> int:
    """Load a run's backbone weights into ``model.backbone``; returns the number of tensors copied."""
    from kptool.train.checkpoint import find_checkpoint, load_checkpoint

    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise KptoolError(f"train.init: model {type(model).__name__} has no backbone to initialise")
    path = find_checkpoint(run_or_checkpoint)
    weights = {k[len(PREFIX):]: v for k, v in load_checkpoint(path)["model"].items() if k.startswith(PREFIX)}
    if not weights:
        raise InputError(path, "has no backbone weights to start from (train.init)")
    try:
        backbone.load_state_dict(weights)
    except RuntimeError as e:
        raise InputError(path, f"its backbone does not fit this model's (same backbone section needed): "
                               f"{str(e).splitlines()[0]}") from None
    return len(weights)


def label_subset(dataset, fraction: float, seed: int):
    """A seeded class-stratified ``fraction`` of a :class:`~kptool.data.prepared.PreparedDataset` view."""
    if not 0 < fraction <= 1:
        raise KptoolError(f"train.label_fraction must lie in (0, 1], got {fraction}")
    if fraction == 1:
        return dataset
    by_class: dict[str, list[str]] = defaultdict(list)
    for rec in dataset.records:
        by_class[rec.get("category") or ""].append(rec["id"])
    rng = np.random.default_rng(seed)
    keep: set[str] = set()
    for name in sorted(by_class):
        ids = by_class[name]
        keep.update(ids[i] for i in rng.permutation(len(ids))[:max(1, math.ceil(fraction * len(ids)))])
    return dataset.only(keep)
