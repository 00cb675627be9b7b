"""The two networks of single-view reconstruction (ShapeHD / MarrNet, paper 004's 2D -> 3D stage).

- :class:`SketchEstimator` (``sketch``): RGB -> 2.5D sketches (depth, normals, silhouette);
  MONAI's ``FlexibleUNet``: a ResNet-18 encoder (torchvision's layout, trained from scratch)
  and a U-Net decoder with skip connections. Losses: L1 on depth and on normals inside the
  true silhouette, binary cross-entropy on the silhouette.
- :class:`VoxelEstimator` (``voxels-from-sketch``): 2.5D sketches (masked depth and normals
  and the silhouette, 5 channels) -> occupancy of an ``R^3`` grid in the canonical frame
  (:mod:`kptool.reconstruct.voxels`); MONAI's 2D ResNet-18 to a latent vector, a linear layer to
  a ``4^3`` volume and 3D transposed convolutions (MONAI ``Convolution`` blocks) doubling it up to
  ``R``. Loss: binary cross-entropy per voxel.

Depth is predicted free of the shape's scale: ``(z - d) / d``, ``z`` the camera-space depth and
``d`` the camera's distance to the look-at target (the shape's box centre), 0 off the shape
(:func:`sketch_targets`). Images of another size are resized to the model's ``image_size``
(bilinear; targets nearest).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kptool.errors import KptoolError
from kptool.models.base import Model
from kptool.models.registry import register_model

# the batch fields (kptool.data.batches.IMAGE_FIELDS) the true sketches are made of
SKETCH_FIELDS = ("silhouette", "depth", "distance", "normal_map")
ENCODERS = ("resnet10", "resnet18", "resnet34")     # MONAI's ResNets (torchvision's layout)


def _resize(x: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode=mode, **({} if mode == "nearest" else {"align_corners": False}))


def _check_image_size(image_size: int) -> int:
    if image_size < 32 or image_size % 32:
        raise KptoolError(f"model.image_size must be a multiple of 32 (ResNet strides), got {image_size}")
    return int(image_size)


def sketch_targets(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The true 2.5D sketches of a batch of rendered views (``silhouette (B, H, W)``, ``depth (B, H, W)``
    camera-space z, ``distance (B,)``, ``normal_map (B, 3, H, W)``): ``depth_map (B, 1, H, W)`` = ``(z - d) / d``
    on the shape and 0 off it, ``normal_map (B, 3, H, W)`` (0 off the shape), ``silhouette (B, 1, H, W)`` float."""
    sil = batch["silhouette"].bool()[:, None]
    d = batch["distance"].to(batch["depth"].dtype).view(-1, 1, 1, 1)
    depth = torch.where(sil, (torch.where(sil, batch["depth"][:, None], d) - d) / d, torch.zeros_like(d))
    return {"depth_map": depth, "normal_map": batch["normal_map"] * sil, "silhouette": sil.to(depth.dtype)}


def _masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the masked pixels: pred, target ``(B, C, S, S)``, mask ``(B, 1, S, S)``."""
    count = mask.sum() * pred.shape[1]
    return ((pred - target).abs() * mask).sum() / count.clamp(min=1)


def _iou(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the IoU of ``prob > 0.5`` and ``target > 0.5`` (any trailing shape)."""
    a, b = (prob > 0.5).flatten(1), (target > 0.5).flatten(1)
    inter, union = (a & b).sum(1).float(), (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).mean()


@register_model("sketch")
class SketchEstimator(Model):
    """RGB ``(B, 3, S, S)`` -> 2.5D sketches ``(B, 5, s, s)``, s = ``image_size`` (see the module docstring)."""

    inputs = ("image", *SKETCH_FIELDS)
    predict_inputs = ("image",)
    outputs = ("sketches",)

    def __init__(self, backbone: str = "resnet18", image_size: int = 64,
                 decoder_channels: Sequence[int] = (256, 128, 64, 32, 16), depth_weight: float = 1.0,
                 normal_weight: float = 1.0, silhouette_weight: float = 1.0):
        super().__init__()
        from monai.networks.nets import FlexibleUNet

        self.image_size = _check_image_size(image_size)
        self.weights = {"depth": float(depth_weight), "normal": float(normal_weight),
                        "silhouette": float(silhouette_weight)}
        try:
            self.net = FlexibleUNet(3, 5, backbone, pretrained=False, decoder_channels=tuple(decoder_channels),
                                    spatial_dims=2)
        except (ValueError, KeyError, NotImplementedError) as e:
            raise KptoolError(f"model.backbone {backbone!r} / decoder_channels do not fit FlexibleUNet: {e}") from None

    def raw(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` in [0, 1] -> ``(B, 5, s, s)``: depth, normals (unnormalised), silhouette logit."""
        return self.net(_resize(image, self.image_size) - 0.5)

    def infer(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        out = self.raw(batch["image"])
        normals = F.normalize(out[:, 1:4], dim=1)
        return {"sketches": torch.cat([out[:, :1], normals, torch.sigmoid(out[:, 4:5])], 1)}

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        out = self.raw(batch["image"])
        true = sketch_targets(batch)
        sil = _resize(true["silhouette"], self.image_size, "nearest")
        depth = _resize(true["depth_map"], self.image_size, "nearest")
        normals = _resize(true["normal_map"], self.image_size, "nearest")
        parts = {"depth": _masked_l1(out[:, :1], depth, sil), "normal": _masked_l1(out[:, 1:4], normals, sil),
                 "silhouette": F.binary_cross_entropy_with_logits(out[:, 4:5], sil)}
        loss = sum(self.weights[k] * v for k, v in parts.items())
        with torch.no_grad():
            iou = _iou(torch.sigmoid(out[:, 4:5]), sil)
        return loss, {**{k: float(v.detach()) for k, v in parts.items()}, "silhouette_iou": float(iou)}


def sketch_input(depth: torch.Tensor, normals: torch.Tensor, silhouette: torch.Tensor) -> torch.Tensor:
    """The 3D estimator's input ``(B, 5, S, S)``: depth and normals where ``silhouette > 0.5``, and the silhouette."""
    mask = (silhouette > 0.5).to(depth.dtype)
    return torch.cat([depth * mask, normals * mask, silhouette], 1)


@register_model("voxels-from-sketch")
class VoxelEstimator(Model):
    """2.5D sketches -> occupancy probabilities ``(B, R, R, R)`` (axes x, y, z of the canonical frame)."""

    inputs = SKETCH_FIELDS
    predict_inputs = SKETCH_FIELDS
    outputs = ("voxels",)

    def __init__(self, resolution: int = 32, image_size: int = 64, latent: int = 200,
                 channels: Sequence[int] = (128, 64, 32, 16), positive_weight: float = 1.0, encoder: str = "resnet18",
                 sketches: str = "rendered"):
        super().__init__()
        from monai.networks import nets
        from monai.networks.blocks import Convolution

        from kptool.reconstruct.voxels import RESOLUTIONS, voxel_table

        if resolution not in RESOLUTIONS or resolution < 8:
            raise KptoolError(f"model.resolution must be one of 16, 32, 64, 128, got {resolution}")
        self.resolution = int(resolution)
        self.image_size = _check_image_size(image_size)
        if not isinstance(sketches, str) or not sketches:
            raise KptoolError(f"model.sketches must be 'rendered' or a sketch-estimator run folder or checkpoint, "
                              f"got {sketches!r}")
        # "rendered": train on the true sketches; else on those a trained (frozen) sketch estimator predicts
        if sketches != "rendered":
            from kptool.train.checkpoint import find_checkpoint

            find_checkpoint(sketches)       # a missing run fails before training starts
        self.sketch_source = sketches
        self.inputs = (*SKETCH_FIELDS, *(() if sketches == "rendered" else ("image",)),
                       f"extras/{voxel_table(resolution)}")
        ups = int(math.log2(resolution // 4))
        channels = tuple(int(c) for c in channels)
        if len(channels) < ups:
            raise KptoolError(f"model.channels needs {ups} entries for resolution {resolution}, got {len(channels)}")
        self.positive_weight = float(positive_weight)
        if encoder not in ENCODERS:
            raise KptoolError(f"model.encoder must be one of {', '.join(ENCODERS)}, got {encoder!r}")
        self.encoder = getattr(nets, encoder)(spatial_dims=2, n_input_channels=5, num_classes=int(latent),
                                              conv1_t_size=7, conv1_t_stride=2)
        self.expand = nn.Sequential(nn.Linear(int(latent), channels[0] * 4 ** 3), nn.ReLU(inplace=True))
        self.start_channels = channels[0]
        widths = [*channels[:ups], max(channels[ups - 1] // 2, 1)]
        blocks = [Convolution(3, widths[i], widths[i + 1], strides=2, kernel_size=3, is_transposed=True,
                              act="relu", norm="batch") for i in range(ups)]
        self.decoder = nn.Sequential(*blocks, nn.Conv3d(widths[-1], 1, kernel_size=3, padding=1))

    def logits(self, sketch: torch.Tensor) -> torch.Tensor:
        """``(B, 5, S, S)`` (:func:`sketch_input`) -> voxel logits ``(B, R, R, R)``."""
        z = self.expand(self.encoder(_resize(sketch, self.image_size)))
        return self.decoder(z.view(len(z), self.start_channels, 4, 4, 4))[:, 0]

    def from_sketches(self, sketches: torch.Tensor) -> torch.Tensor:
        """Predicted sketches ``(B, 5, s, s)`` (:class:`SketchEstimator`'s output) -> occupancy ``(B, R, R, R)``."""
        return torch.sigmoid(self.logits(sketch_input(sketches[:, :1], sketches[:, 1:4], sketches[:, 4:5])))

    def infer(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Occupancy from the true sketches of rendered views (the batch fields :data:`SKETCH_FIELDS`)."""
        true = sketch_targets(batch)
        return {"voxels": torch.sigmoid(self.logits(sketch_input(true["depth_map"], true["normal_map"],
                                                                 true["silhouette"])))}

    def _sketch_estimator(self, device: torch.device) -> SketchEstimator:
        """The frozen sketch estimator of ``model.sketches`` (loaded once; kept outside the module tree, so
        neither the optimiser nor this model's checkpoints hold its weights)."""
        frozen = self.__dict__.get("_frozen_sketch")
        if frozen is None:
            from kptool.reconstruct.pipeline import load_sketch_estimator

            frozen = load_sketch_estimator(self.sketch_source).eval()
            self.__dict__["_frozen_sketch"] = frozen
        return frozen.to(device)

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        if self.sketch_source == "rendered":
            true = sketch_targets(batch)
            x = sketch_input(true["depth_map"], true["normal_map"], true["silhouette"])
        else:
            sk = self._sketch_estimator(batch["image"].device).predict({"image": batch["image"]})["sketches"]
            x = sketch_input(sk[:, :1], sk[:, 1:4], sk[:, 4:5])
        logits = self.logits(x)
        grids = batch[self.inputs[-1]]
        target = torch.as_tensor(np.stack([np.asarray(g) for g in grids]) if isinstance(grids, list) else grids,
                                 dtype=logits.dtype, device=logits.device)
        weight = torch.as_tensor(self.positive_weight, dtype=logits.dtype, device=logits.device)
        loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)
        with torch.no_grad():
            iou = _iou(torch.sigmoid(logits), target)
        return loss, {"bce": float(loss.detach()), "voxel_iou": float(iou)}
