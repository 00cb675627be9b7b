"""Validation during training: the model's objective and registered metrics on the validation split.

``train.val_metrics`` names what is computed: ``loss`` is the training objective (and
its parts) on fixed batches; any other name is a metric of :data:`kptool.metrics.METRICS`,
computed on the model's predictions exactly as ``kptool eval`` computes it, and logged
by its headline values (``das``, ``das_forward``...). A metric the split cannot support
(no annotations) is left out. On rendered images, the names of
:data:`kptool.metrics.viewpoint.IMAGE_METRICS` (``viewpoint``) are computed instead.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from kptool.data.batches import batch_to, collate_shapes
from kptool.errors import KptoolError
from kptool.metrics.viewpoint import IMAGE_METRICS
from kptool.render.images import RenderedImages
from kptool.train.sampler import eval_batches


def objective(model: nn.Module, dataset, device: torch.device, batch_size: int) -> dict[str, float]:
    """The model's training objective and its components on ``dataset``, averaged over batches."""
    data = dataset.torch_dataset(model.inputs)
    sums: dict[str, float] = {}
    batches = eval_batches(len(data), batch_size, paired=bool(getattr(model, "paired", False)))
    for idx in batches:
        loss, parts = model.training_loss(batch_to(collate_shapes([data[i] for i in idx]), device))
        for k, v in {"loss": loss, **parts}.items():
            sums[k] = sums.get(k, 0.0) + float(v)
    return {k: v / len(batches) for k, v in sums.items()}


def metric_values(model: nn.Module, dataset, device: torch.device, batch_size: int,
                  names: Sequence[str]) -> dict[str, float]:
    """Headline values of the registered metrics ``names`` on the model's predictions."""
    from kptool.metrics import METRICS, EvalContext
    from kptool.models.predict import predict_dataset

    metrics = [METRICS.build({"name": n}) for n in names]
    metrics = [m for m in metrics if m.kind in model.outputs and not m.redetects]
    if not metrics:
        return {}
    shapes = list(dataset)
    predicted = predict_dataset(model, dataset, device, batch_size)
    ctx = EvalContext(dataset, shapes, {k: [v[s.id] for s in shapes] for k, v in predicted.items()})
    out: dict[str, float] = {}
    for m in metrics:
        try:
            m.check(ctx)
        except KptoolError:
            continue    # e.g. DAS on a split without keypoint annotations
        out.update(m.scalars(m.compute(ctx)))
    return out


def validate(model: nn.Module, dataset, device: torch.device, batch_size: int,
             names: Sequence[str]) -> dict[str, float]:
    """Every value of ``names`` with the model in eval mode and no gradients."""
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    try:
        with torch.no_grad():
            if "loss" in names:
                out.update(objective(model, dataset, device, batch_size))
            out.update(metric_values(model, dataset, device, batch_size,
                                     [n for n in names if n != "loss" and n not in IMAGE_METRICS]))
            if isinstance(dataset, RenderedImages):
                for n in names:
                    if n in IMAGE_METRICS:
                        out.update(IMAGE_METRICS[n](model, dataset, device, batch_size))
    finally:
        model.train(was_training)
    return out
