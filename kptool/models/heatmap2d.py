"""A direct 2D keypoint network: image -> one heat map per semantic id, and visibility.

The baseline of paper 004's comparison: it maps an image straight to 2D keypoints, with no
3D shape in between. Architecture as the "simple baselines" for 2D pose (Xiao et al., ECCV
2018): a ResNet-18 encoder (MONAI's, torchvision's layout, from scratch) up to its stride-32
features, three stride-2 transposed convolutions (4 x 4, 256 channels, batch norm, ReLU) to
stride 4, and a 1 x 1 convolution to one heat map per semantic id; a linear layer on the
pooled encoder features gives one visibility logit per id.

Training (the annotated keypoints of rendered views): for every keypoint that lies inside
the image, visible or hidden, the softmax over its id's heat map is fitted to a Gaussian of
``sigma`` heat-map cells around the true position (cross-entropy); visibility by binary
cross-entropy over the ids the shape carries. Ids never seen in training are not predicted
(``trained_ids``). Decoding: the arg-max cell, refined by the soft-argmax of its 3 x 3
neighbourhood; pixel coordinates at pixel centres of the input image.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kptool.errors import KptoolError
from kptool.models.base import Model
from kptool.models.registry import register_model
from kptool.models.viewpoint import IMAGE_MEAN, IMAGE_STD, resnet

STRIDE = 4      # heat-map cells per input pixel: 32 / 2^3


def gaussian_targets(uv: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """``(M, 2)`` heat-map coordinates (cell centres at integers) -> ``(M, size * size)`` distributions."""
    grid = torch.arange(size, dtype=uv.dtype, device=uv.device)
    gx = torch.exp(-(grid[None, :] - uv[:, :1]) ** 2 / (2 * sigma ** 2))         # (M, size) over columns
    gy = torch.exp(-(grid[None, :] - uv[:, 1:]) ** 2 / (2 * sigma ** 2))         # (M, size) over rows
    maps = gy[:, :, None] * gx[:, None, :]
    maps = maps.reshape(len(uv), -1)
    return maps / maps.sum(1, keepdim=True).clamp(min=1e-12)


def decode_heatmaps(heatmaps: torch.Tensor) -> torch.Tensor:
    """``(B, J, h, w)`` scores -> ``(B, J, 2)`` heat-map coordinates ``(x, y)``: arg-max, then the
    soft-argmax of the softmax over its 3 x 3 neighbourhood (cells outside the map left out)."""
    b, j, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, j, -1)
    best = flat.argmax(-1)
    y0, x0 = torch.div(best, w, rounding_mode="floor"), best % w
    offsets = torch.tensor([-1, 0, 1], device=heatmaps.device)
    ys = (y0[..., None, None] + offsets[:, None]).expand(b, j, 3, 3)
    xs = (x0[..., None, None] + offsets[None, :]).expand(b, j, 3, 3)
    inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    index = (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).reshape(b, j, 9)
    scores = torch.gather(flat, 2, index).masked_fill(~inside.reshape(b, j, 9), float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    x = (weights * xs.reshape(b, j, 9).to(weights)).sum(-1)
    y = (weights * ys.reshape(b, j, 9).to(weights)).sum(-1)
    return torch.stack([x, y], dim=-1)


@register_model("heatmap2d")
class HeatmapKeypoints2D(Model):
    """Image -> per-id heat maps and visibility (a direct 2D baseline; see the module docstring)."""

    inputs = ("image", "keypoints_2d", "keypoint_visible", "keypoint_ids")
    predict_inputs = ("image",)
    outputs = ("keypoints_2d",)

    def __init__(self, num_ids: int = 32, depth: int = 18, channels: int = 256, sigma: float = 1.0,
                 visibility_weight: float = 1.0):
        super().__init__()
        if int(num_ids) < 1:
            raise KptoolError(f"heatmap2d: num_ids must be at least 1, got {num_ids}")
        if float(sigma) <= 0:
            raise KptoolError(f"heatmap2d: sigma must be positive, got {sigma}")
        self.num_ids, self.sigma, self.visibility_weight = int(num_ids), float(sigma), float(visibility_weight)
        encoder = resnet(int(depth), 1)
        self.encoder = nn.Sequential(encoder.conv1, encoder.bn1, encoder.act, encoder.maxpool, encoder.layer1,
                                     encoder.layer2, encoder.layer3, encoder.layer4)
        width = encoder.fc.in_features
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [nn.ConvTranspose2d(width if i == 0 else channels, channels, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.head = nn.Sequential(*layers, nn.Conv2d(channels, self.num_ids, 1))
        self.visibility = nn.Linear(width, self.num_ids)
        self.register_buffer("trained_ids", torch.zeros(self.num_ids, dtype=torch.bool))
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)

    def forward_maps(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 3, S, S)`` RGB in [0, 1] (S a multiple of 32) -> heat maps ``(B, J, S/4, S/4)``, visibility
        logits ``(B, J)``."""
        if image.ndim != 4 or image.shape[1] != 3 or image.shape[2] % 32 or image.shape[3] % 32:
            raise KptoolError(f"heatmap2d: images must be (B, 3, S, S) with S a multiple of 32, got "
                              f"{tuple(image.shape)}")
        features = self.encoder((image - self.mean) / self.std)
        return self.head(features), self.visibility(features.mean((2, 3)))

    def infer(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``keypoints_2d`` ``(B, J, 4)``: ``u, v`` (input pixels), visibility probability, and 1 where the id
        was trained (0: never seen in training, not a prediction)."""
        maps, vis = self.forward_maps(batch["image"])
        uv = (decode_heatmaps(maps) + 0.5) * STRIDE - 0.5
        known = self.trained_ids.to(uv.dtype)[None, :, None].expand(len(uv), -1, 1)
        return {"keypoints_2d": torch.cat([uv, torch.sigmoid(vis)[..., None], known], dim=-1)}

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        maps, vis_logits = self.forward_maps(batch["image"])
        b, j, h, w = maps.shape
        size = batch["image"].shape[-1]
        rows, ids, cells, vis_rows, vis_ids, vis_target = [], [], [], [], [], []
        for i, (uv, visible, kid) in enumerate(zip(batch["keypoints_2d"], batch["keypoint_visible"],
                                                   batch["keypoint_ids"])):
            kid = kid.long()
            if (kid >= self.num_ids).any() or (kid < 0).any():
                raise KptoolError(f"heatmap2d: keypoint id {int(kid.max())} outside 0..{self.num_ids - 1}; "
                                  f"train with --set model.num_ids={int(kid.max()) + 1}")
            inside = (uv >= -0.5).all(1) & (uv <= size - 0.5).all(1)
            rows.append(torch.full((int(inside.sum()),), i, device=maps.device))
            ids.append(kid[inside])
            cells.append((uv[inside] + 0.5) / STRIDE - 0.5)
            vis_rows.append(torch.full((len(kid),), i, device=maps.device))
            vis_ids.append(kid)
            vis_target.append(visible.to(maps.dtype))
            self.trained_ids[kid] = True
        rows, ids, cells = torch.cat(rows), torch.cat(ids), torch.cat(cells).to(maps.dtype)
        if len(rows):
            logits = maps[rows, ids].reshape(len(rows), -1)
            heat = -(gaussian_targets(cells, h, self.sigma) * F.log_softmax(logits, dim=1)).sum(1).mean()
        else:
            heat = maps.sum() * 0
        vr, vi, vt = torch.cat(vis_rows), torch.cat(vis_ids), torch.cat(vis_target)
        visibility = (F.binary_cross_entropy_with_logits(vis_logits[vr, vi], vt) if len(vr)
                      else vis_logits.sum() * 0)
        loss = heat + self.visibility_weight * visibility
        with torch.no_grad():
            error = ((decode_heatmaps(maps)[rows, ids] - cells).norm(dim=1) * STRIDE).mean().item() if len(rows) \
                else 0.0
        return loss, {"heatmap": heat.item(), "visibility": visibility.item(), "error_px": error}
