"""Pieces every backbone shares: the per-point MLP, the input check, the per-point head.

The backbone interface (every class in :data:`kptool.models.backbones.BACKBONES`)::

    backbone(xyz (B, N, 3), features (B, N, in_channels) or None)
        -> per_point (B, N, out_channels), global (B, global_channels)

with ``in_channels``, ``out_channels``, ``global_channels`` and ``min_points`` (fewest
points per cloud it accepts) as attributes, and ``forward_reference`` computing the
same function literally (no rewrites), for tests.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from kptool.errors import KptoolError
from kptool.models.backbones.pooled_norm import bn_relu, pooled_bn_relu


class SharedMLP(nn.Module):
    """Per-position ``Linear -> BatchNorm -> ReLU`` layers on channel-last ``(..., C)`` tensors.

    The linear layers have no bias: BatchNorm subtracts the per-channel mean right
    after, which cancels any bias exactly (the reference's convolution biases are
    dead parameters; dropping them saves a reduction over the largest tensors).
    ``skip_first_linear`` in :meth:`forward` lets callers apply the first linear
    layer themselves (the exact rewrites of the backbones).
    """

    def __init__(self, in_channels: int, widths: Sequence[int]):
        super().__init__()
        if not widths:
            raise ValueError("a shared MLP needs at least one layer")
        dims = [in_channels, *widths]
        self.linears = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) for b in widths)

    @property
    def out_channels(self) -> int:
        return self.linears[-1].out_features

    def forward(self, x: torch.Tensor, skip_first_linear: bool = False,
                max_pool_dim: int | None = None) -> torch.Tensor:
        """``(..., C_in)`` -> ``(..., C_out)``; with ``max_pool_dim``, max-pooled over that axis
        (the last BatchNorm, ReLU and the pooling fused, :func:`pooled_bn_relu`)."""
        last = len(self.linears) - 1
        for i, (linear, bn) in enumerate(zip(self.linears, self.norms)):
            if i or not skip_first_linear:
                x = linear(x)
            x = pooled_bn_relu(x, bn, max_pool_dim) if i == last and max_pool_dim is not None else bn_relu(x, bn)
        return x


def check_inputs(xyz: torch.Tensor, features: torch.Tensor | None, in_channels: int) -> None:
    """``xyz (B, N, 3)`` and ``features (B, N, in_channels)`` (None when ``in_channels`` is 0)."""
    if not isinstance(xyz, torch.Tensor) or xyz.dim() != 3 or xyz.shape[-1] != 3:
        raise ValueError(f"xyz must be (B, N, 3), got {tuple(getattr(xyz, 'shape', ()))}")
    if in_channels == 0:
        if features is not None:
            raise ValueError("this backbone takes no input features (in_channels is 0)")
    elif features is None or features.shape != (*xyz.shape[:-1], in_channels):
        got = None if features is None else tuple(features.shape)
        raise ValueError(f"features must be (B, N, {in_channels}) with xyz's B and N, got {got}")


def coordinate_features(xyz: torch.Tensor, in_channels: int) -> torch.Tensor | None:
    """The point features a model without other per-point data gives a backbone: its coordinates.

    ``(B, N, 3)`` -> ``(B, N, in_channels)``, the coordinates repeated ``in_channels / 3``
    times (Skeleton Merger's 9 channels are three copies), or None when the backbone
    takes none. PointNet++ needs them: its set abstraction sees only offsets to the
    centres, so without them nothing tells it where on the shape a point is.
    """
    if in_channels == 0:
        return None
    if in_channels % 3:
        raise KptoolError(f"backbone in_channels must be 0 or a multiple of 3 (coordinates as point features), "
                          f"got {in_channels}")
    return xyz.repeat(1, 1, in_channels // 3)


def point_inputs(xyz: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
    """``[xyz, features]`` per point, ``(B, N, 3 + C)``."""
    return xyz if features is None else torch.cat([xyz, features], dim=-1)


class LocalGlobalHead(nn.Module):
    """Per-point features from ``[local features, the shape's global feature]`` (PointNet, DGCNN).

    The first layer is linear in the concatenation, so the global part is applied once
    per shape instead of once per point (exact; :meth:`forward_reference` concatenates).
    """

    def __init__(self, local_channels: int, global_channels: int, widths: Sequence[int]):
        super().__init__()
        self.local_channels = int(local_channels)
        self.mlp = SharedMLP(self.local_channels + global_channels, widths)

    @property
    def out_channels(self) -> int:
        return self.mlp.out_channels

    def forward(self, local: torch.Tensor, global_: torch.Tensor) -> torch.Tensor:
        """``local (B, N, C_l)``, ``global_ (B, C_g)`` -> ``(B, N, out_channels)``."""
        w_local, w_global = self.mlp.linears[0].weight.split(
            [self.local_channels, self.mlp.linears[0].in_features - self.local_channels], dim=1)
        x = local @ w_local.T + (global_ @ w_global.T)[:, None, :]
        return self.mlp(x, skip_first_linear=True)

    def forward_reference(self, local: torch.Tensor, global_: torch.Tensor) -> torch.Tensor:
        expanded = global_[:, None, :].expand(-1, local.shape[1], -1)
        return self.mlp(torch.cat([local, expanded], dim=-1))
