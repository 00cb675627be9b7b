"""Self-supervised pre-training of a point-wise network (paper 003 and its Jigsaw3D baseline).

A shared backbone (``backbone:``, :data:`~kptool.models.backbones.BACKBONES`) gives
per-point features and a max-pooled global feature; a linear per-point head turns the
per-point features into as many logits as the pretext objective (``loss:``,
:mod:`kptool.losses.pretext`) asks for: J = 32 mixture partitions for ParAE's
``gmm-nll``, k^3 cells for ``jigsaw3d``. After pre-training only the backbone matters:
its global feature (``global_features``) is what the linear-SVM probe and fine-tuning use.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from kptool.losses import LOSSES
from kptool.models.backbones import BACKBONES
from kptool.models.backbones.common import coordinate_features
from kptool.models.base import Model
from kptool.models.registry import register_model


@register_model("pretext")
class PointPretext(Model):
    """Self-supervised pre-training: a backbone's per-point logits trained by a pretext objective (ParAE, Jigsaw3D)."""

    inputs = ("points",)
    outputs = ("global_features", "point_logits")

    def __init__(self, backbone: Mapping[str, Any] | None = None, loss: Mapping[str, Any] | None = None):
        super().__init__()
        self.backbone = BACKBONES.build(dict(backbone or {"name": "pointnet"}))
        self.objective = LOSSES.build(dict(loss or {"name": "gmm-nll"}))
        self.head = nn.Linear(self.backbone.out_channels, self.objective.num_logits)

    def features(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, N, 3)`` -> per-point logits ``(B, N, num_logits)`` and the global feature ``(B, G)``."""
        per_point, global_ = self.backbone(points, coordinate_features(points, self.backbone.in_channels))
        return self.head(per_point), global_

    def infer(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        logits, global_ = self.features(batch["points"])
        return {"global_features": global_, "point_logits": logits}

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        return self.objective(lambda points: self.features(points)[0], batch["points"])
