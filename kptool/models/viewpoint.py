"""Viewpoint from RGB (paper 004, the 2D-3D-2D reference code): a ResNet over binned angles.

The camera's azimuth and elevation (conventions of :mod:`kptool.render.camera`: elevation is
the polar angle of the eye from +y in [0, pi], azimuth ``atan2(x, z)`` in [0, 2 pi)) are
classified into bins: 24 azimuth bins centred at ``(k + 1/2) 15`` degrees (circular) and 12
elevation bins centred at ``k pi / 11`` (both ends included). The network (ResNet-18, trained
from scratch: no weights can be downloaded) gives 24 + 12 logits; each group goes through a
log-softmax and is trained with the KL divergence against a *two-hot* soft label, which splits
the true angle between its two nearest bin centres linearly. Decoding: azimuth by the circular
mean of the bin centres under the predicted distribution, elevation by its expectation.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kptool.errors import KptoolError
from kptool.models.base import Model
from kptool.models.registry import register_model

# ImageNet statistics: the reference network saw ImageNet-normalised inputs; kept so that a
# pre-trained torchvision ResNet-18 state could be loaded into the same layout.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
DEPTHS = (10, 18, 34)


def azimuth_centres(bins: int = 24) -> torch.Tensor:
    """``(bins,)`` float64 centres ``(k + 1/2) 2 pi / bins``."""
    return (torch.arange(bins, dtype=torch.float64) + 0.5) * (2 * math.pi / bins)


def elevation_centres(bins: int = 12) -> torch.Tensor:
    """``(bins,)`` float64 centres ``k pi / (bins - 1)``: 0 and pi are centres."""
    return torch.arange(bins, dtype=torch.float64) * (math.pi / (bins - 1))


def two_hot_azimuth(azimuth: torch.Tensor, bins: int = 24) -> torch.Tensor:
    """``(B,)`` radians -> ``(B, bins)`` soft labels on the circle (the two nearest centres, linearly)."""
    width = 2 * math.pi / bins
    position = torch.remainder(azimuth.double(), 2 * math.pi) / width - 0.5        # in [-0.5, bins - 0.5)
    low = torch.floor(position)
    w_high = position - low
    low = torch.remainder(low, bins).long()
    out = torch.zeros(len(azimuth), bins, dtype=torch.float64, device=azimuth.device)
    out.scatter_add_(1, low[:, None], (1 - w_high)[:, None])
    out.scatter_add_(1, torch.remainder(low + 1, bins)[:, None], w_high[:, None])
    return out.to(azimuth.dtype if azimuth.is_floating_point() else torch.float32)


def two_hot_elevation(elevation: torch.Tensor, bins: int = 12) -> torch.Tensor:
    """``(B,)`` radians in [0, pi] -> ``(B, bins)`` soft labels (clamped to [0, pi])."""
    position = elevation.double().clamp(0, math.pi) / (math.pi / (bins - 1))        # in [0, bins - 1]
    low = torch.floor(position).clamp(max=bins - 2)
    w_high = position - low
    low = low.long()
    out = torch.zeros(len(elevation), bins, dtype=torch.float64, device=elevation.device)
    out.scatter_add_(1, low[:, None], (1 - w_high)[:, None])
    out.scatter_add_(1, (low + 1)[:, None], w_high[:, None])
    return out.to(elevation.dtype if elevation.is_floating_point() else torch.float32)


def decode_azimuth(log_probs: torch.Tensor) -> torch.Tensor:
    """``(B, bins)`` log-probabilities -> ``(B,)`` circular mean of the centres, in [0, 2 pi)."""
    p = log_probs.exp()
    c = azimuth_centres(log_probs.shape[1]).to(p)
    azimuth = torch.remainder(torch.atan2(p @ torch.sin(c), p @ torch.cos(c)), 2 * math.pi)
    return torch.where(azimuth >= 2 * math.pi, azimuth - 2 * math.pi, azimuth)    # remainder(-0.0...) rounds to 2 pi


def decode_elevation(log_probs: torch.Tensor) -> torch.Tensor:
    """``(B, bins)`` log-probabilities -> ``(B,)`` expected elevation in [0, pi]."""
    return log_probs.exp() @ elevation_centres(log_probs.shape[1]).to(log_probs)


def resnet(depth: int, num_classes: int) -> nn.Module:
    """torchvision's ResNet layout (7x7 stride-2 stem, max pool, 1x1 downsampling convolutions without
    bias) from MONAI, which needs only torch (torchvision's wheels need a CUDA build of torch)."""
    from monai.networks.nets import resnet as monai_resnet

    build = {10: monai_resnet.resnet10, 18: monai_resnet.resnet18, 34: monai_resnet.resnet34}[depth]
    return build(spatial_dims=2, n_input_channels=3, num_classes=num_classes, conv1_t_size=7, conv1_t_stride=2,
                 bias_downsample=False)


@register_model("viewpoint")
class ViewpointNet(Model):
    """Viewpoint from RGB: ResNet -> 24 azimuth + 12 elevation bins, two-hot KL (2D-3D-2D reference)."""

    inputs = ("image", "azimuth", "elevation")
    predict_inputs = ("image",)
    outputs = ("viewpoint",)

    def __init__(self, depth: int = 18, azimuth_bins: int = 24, elevation_bins: int = 12):
        super().__init__()
        if int(depth) not in DEPTHS:
            raise KptoolError(f"viewpoint: depth must be one of {', '.join(map(str, DEPTHS))}, got {depth}")
        if int(azimuth_bins) < 2 or int(elevation_bins) < 2:
            raise KptoolError(f"viewpoint: azimuth_bins and elevation_bins must be at least 2, got "
                              f"{azimuth_bins} and {elevation_bins}")
        self.azimuth_bins, self.elevation_bins = int(azimuth_bins), int(elevation_bins)
        self.network = resnet(int(depth), self.azimuth_bins + self.elevation_bins)
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)

    def log_probs(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 3, H, W)`` RGB in [0, 1] -> azimuth ``(B, 24)`` and elevation ``(B, 12)`` log-probabilities."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise KptoolError(f"viewpoint: images must be (B, 3, H, W), got {tuple(image.shape)}")
        logits = self.network((image - self.mean) / self.std)
        return (F.log_softmax(logits[:, :self.azimuth_bins], dim=1),
                F.log_softmax(logits[:, self.azimuth_bins:], dim=1))

    def infer(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        az, el = self.log_probs(batch["image"])
        return {"viewpoint": torch.stack([decode_azimuth(az), decode_elevation(el)], dim=1)}

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        az, el = self.log_probs(batch["image"])
        kl_az = F.kl_div(az, two_hot_azimuth(batch["azimuth"], self.azimuth_bins).to(az), reduction="batchmean")
        kl_el = F.kl_div(el, two_hot_elevation(batch["elevation"], self.elevation_bins).to(el),
                         reduction="batchmean")
        loss = kl_az + kl_el
        with torch.no_grad():
            az_error = torch.remainder(decode_azimuth(az) - batch["azimuth"] + math.pi, 2 * math.pi) - math.pi
            el_error = decode_elevation(el) - batch["elevation"]
        return loss, {"kl_azimuth": kl_az.item(), "kl_elevation": kl_el.item(),
                      "azimuth_error_deg": math.degrees(az_error.abs().mean().item()),
                      "elevation_error_deg": math.degrees(el_error.abs().mean().item())}
