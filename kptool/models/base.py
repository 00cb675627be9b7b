"""The model contract: what every trainable method declares and provides.

A model is an ``nn.Module`` subclass of :class:`Model` that declares

- ``inputs``: the batch fields its training objective reads (:data:`BATCH_FIELDS`, or
  ``extras/<name>`` for a per-shape table of the prepared dataset);
- ``predict_inputs``: the batch fields prediction reads (usually just ``points``);
- ``outputs``: the kinds of result :meth:`Model.predict` returns (:data:`OUTPUT_KINDS`);
- ``paired``: True when shape i of a training batch is paired with shape i + B/2;
- ``details``: further per-shape results :meth:`Model.predict` returns beside the outputs
  (a symmetry plane, nodes...), written into a keypoints predictions file as each shape's
  ``details`` (:meth:`Model.shape_details` may add derived ones, e.g. merged keypoints);

and implements ``training_loss(batch) -> (loss, parts)`` and ``infer(batch) -> dict``.
The training loop, validation, ``kptool detect`` and ``kptool eval`` only ever use
these, so a new method is a model file, its losses and metrics, and a preset.

A batch is a dict of tensors on the model's device (see :mod:`kptool.data.batches`):
fields of equal size per shape are stacked (``points (B, N, 3)``), ragged ones
(annotated keypoints) are lists of per-shape tensors.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kptool.data.batches import BATCH_FIELDS, check_field  # noqa: F401  (BATCH_FIELDS: part of the contract)
from kptool.errors import KptoolError

# What a model may return from predict(), by kind; shapes per batch of B shapes.
OUTPUT_KINDS: dict[str, str] = {
    "keypoints": "(B, K, 3) ordered keypoints (index = semantic slot), prepared frame",
    "embeddings": "(B, N, D) dense per-point embeddings",
    "point_logits": "(B, N, J) per-point class scores (part segmentation, ...)",
    "global_features": "(B, C) one feature vector per shape",
    "class_logits": "(B, C) shape classification scores",
    "keypoints_2d": "(B, J, 4) per semantic id: u, v (input pixels), visibility probability, 1 if the id is known",
    "viewpoint": "(B, 2) camera azimuth and elevation in radians (kptool.render.camera conventions), per image",
    "sketches": "(B, 5, S, S) 2.5D sketches: depth (z - d) / d (1), normals (3), silhouette probability (1)",
    "voxels": "(B, R, R, R) occupancy probabilities, canonical frame (kptool.reconstruct.voxels)",
}


def check_contract(cls: type) -> None:
    """Raise KptoolError when a model class declares fields or outputs outside the contract."""
    for name in (*cls.inputs, *cls.predict_inputs):
        check_field(name, cls.__name__)
    unknown = [k for k in cls.outputs if k not in OUTPUT_KINDS]
    if unknown or not cls.outputs:
        raise KptoolError(f"{cls.__name__}: outputs must be among {', '.join(OUTPUT_KINDS)}, got {cls.outputs}")


class Model(nn.Module):
    """Base class of every trainable method (see the module docstring)."""

    inputs: tuple[str, ...] = ("points",)
    predict_inputs: tuple[str, ...] = ("points",)
    outputs: tuple[str, ...] = ("keypoints",)
    paired: bool = False
    details: tuple[str, ...] = ()

    @classmethod
    def upgrade_config(cls, section: dict[str, Any]) -> dict[str, Any]:
        """The ``model:`` section of an older config in today's form (default: as it is).

        Checkpoints and shipped weights store the config they were trained with; a model
        whose keys moved rewrites the old form here, so that they load unchanged.
        """
        return section

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """The training objective on one batch (fields ``inputs``): ``(scalar loss, named parts)``."""
        raise NotImplementedError

    def infer(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The outputs of one batch (fields ``predict_inputs``) in the current mode."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``infer`` in eval mode without gradients (the mode is restored after): ``{kind: tensor}``."""
        was_training = self.training
        self.eval()
        try:
            out = self.infer(batch)
        finally:
            self.train(was_training)
        missing = [k for k in (*self.outputs, *self.details) if k not in out]
        if missing:
            raise KptoolError(f"{type(self).__name__}.infer did not return its declared output(s) {missing}")
        return {k: out[k] for k in (*self.outputs, *self.details)}

    def shape_details(self, predicted: dict[str, Any], points: Any) -> dict[str, Any]:
        """One shape's details for the predictions file: ``predicted`` holds its outputs and
        ``details`` as numpy arrays, ``points`` its ``(N, 3)`` cloud (default: the details as they are)."""
        return {k: predicted[k] for k in self.details}
