"""Pictures of what a ParAE model infers: each shape's Gaussian mixture as 1-sigma ellipsoids (paper Fig. 3)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from kptool.errors import KptoolError


def draw_mixtures(checkpoint: str | os.PathLike, data: str | os.PathLike, path: str | os.PathLike,
                  split: str = "test", count: int = 4, device: str = "auto") -> Path:
    """Draw the mixtures a ``gmm-nll`` pre-training run infers for the first ``count`` shapes of ``split``.

    Points take the colour of their most likely partition; components lighter than half
    the uniform weight (1 / 2J), which soft assignments spread over the whole shape, are
    left out. Furniture shapes are titled with their creator and licence (CC-BY models must
    be attributed).
    """
    from kptool.data.prepared import PreparedDataset
    from kptool.detect.learned import load_detector
    from kptool.device import resolve_device
    from kptool.losses.gmm import mixture_from_logits
    from kptool.losses.pretext import GMMLikelihood
    from kptool.viz.probe import plot_mixtures

    dev = resolve_device(device)
    model = load_detector(checkpoint, dev).model
    objective = getattr(model, "objective", None)
    if not isinstance(objective, GMMLikelihood):
        raise KptoolError(f"{checkpoint}: not a ParAE (gmm-nll) pre-training run: it has no mixture to draw")
    shapes = list(PreparedDataset(data, split))[:count]
    if not shapes:
        raise KptoolError(f"{data}: the {split} split has no shapes")
    clouds, mixtures, assignments, titles = [], [], [], []
    for shape in shapes:
        points = torch.from_numpy(shape.points).float()[None].to(dev)
        logits = model.predict({"points": points})["point_logits"]
        mix = mixture_from_logits(points.double(), logits.double(), objective.ridge)
        clouds.append(shape.points)
        mixtures.append(tuple(t[0].cpu().numpy() for t in mix))
        assignments.append(logits[0].argmax(-1).cpu().numpy())
        credit = ", ".join(str(shape.meta[k]) for k in ("creator", "license") if k in shape.meta)
        titles.append(shape.id + (f"\n{credit}" if credit else ""))
    return plot_mixtures(clouds, mixtures, path, assignments, titles, min_weight=0.5 / objective.num_logits)
