"""Shape classification on a shared backbone's global feature (fine-tuning after pre-training).

The backbone (``backbone:``) max-pools a global feature; an MLP with BatchNorm, ReLU and
dropout (PointNet's classification head: 512, 256) maps it to class logits, trained with
cross-entropy against the dataset's class labels (docs/formats.md, "Class labels").
``train.init: RUN`` starts the backbone from a pre-training run (``kptool train --init``).

``num_classes: auto`` (the presets) takes the number of classes from the training data;
``kptool train`` then records the data's class names in ``model.class_names`` (and so in
every checkpoint's config), so predictions can name their classes
(:mod:`kptool.train.classes`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kptool.errors import KptoolError
from kptool.models.backbones import BACKBONES
from kptool.models.backbones.common import coordinate_features
from kptool.models.base import Model
from kptool.models.registry import register_model


@register_model("classifier")
class ShapeClassifier(Model):
    """Shape classification: a backbone's global feature -> MLP -> class logits (cross-entropy)."""

    inputs = ("points", "class_label")
    outputs = ("class_logits", "global_features")

    def __init__(self, num_classes: int | str = "auto", backbone: Mapping[str, Any] | None = None,
                 widths: Sequence[int] = (512, 256), dropout: float = 0.5,
                 class_names: Sequence[str] | None = None):
        super().__init__()
        if num_classes == "auto":
            if not class_names:
                raise KptoolError("classifier: model.num_classes is auto, which `kptool train` sets from the "
                                  "training data; elsewhere give a number (--set model.num_classes=N)")
            num_classes = len(class_names)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise KptoolError(f"classifier: model.num_classes must be auto or an integer of at least 2, "
                              f"got {num_classes!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise KptoolError(f"classifier: {len(class_names)} class_names for num_classes={num_classes}")
        self.num_classes = int(num_classes)
        # the training data's class names, index = logit (None: a model built without data)
        self.class_names = None if class_names is None else [str(n) for n in class_names]
        self.backbone = BACKBONES.build(dict(backbone or {"name": "pointnet"}))
        layers: list[nn.Module] = []
        width = self.backbone.global_channels
        for w in widths:
            layers += [nn.Linear(width, int(w)), nn.BatchNorm1d(int(w)), nn.ReLU(), nn.Dropout(float(dropout))]
            width = int(w)
        self.head = nn.Sequential(*layers, nn.Linear(width, self.num_classes))

    def infer(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        points = batch["points"]
        _, global_ = self.backbone(points, coordinate_features(points, self.backbone.in_channels))
        return {"class_logits": self.head(global_), "global_features": global_}

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        labels = batch["class_label"]
        if int(labels.max()) >= self.num_classes:
            raise KptoolError(f"the dataset has class label {int(labels.max())} but the model has num_classes="
                              f"{self.num_classes} (leave model.num_classes at auto)")
        logits = self.infer(batch)["class_logits"]
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(-1) == labels).float().mean()
        return loss, {"loss": loss.item(), "accuracy": accuracy.item()}
