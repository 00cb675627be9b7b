"""PointNet segmentation backbone (Qi et al., CVPR 2017), channel-last.

Each point goes through shared MLPs (64, 64: local features), then (64, 128, 1024),
max-pooled over the points into the global feature; the per-point output is a shared
MLP (512, 256, 128) on ``[local, global]``, as in the paper's segmentation network.
An optional input transform (T-Net) first maps the coordinates by a learned 3 x 3
matrix predicted from the cloud itself. The paper's 64 x 64 feature transform is not
included.

Exact rewrites (the plain forms are in ``forward_reference``): max-pools fuse the last
BatchNorm and ReLU (:func:`kptool.models.backbones.pooled_norm.pooled_bn_relu`), and
the head applies its first layer's global part once per shape
(:class:`~kptool.models.backbones.common.LocalGlobalHead`).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from kptool.models.backbones import BACKBONES
from kptool.models.backbones.common import LocalGlobalHead, SharedMLP, check_inputs, point_inputs


class InputTransform(nn.Module):
    """PointNet's T-Net: a ``(B, 3, 3)`` matrix per cloud, the identity at initialisation.

    Shared MLP (64, 128, 1024) per point, max-pool, MLP (512, 256), then a linear
    layer to 9 numbers with zero weights and the identity as bias.
    """

    def __init__(self, point_widths: Sequence[int] = (64, 128, 1024), widths: Sequence[int] = (512, 256)):
        super().__init__()
        self.points = SharedMLP(3, point_widths)
        self.mlp = SharedMLP(self.points.out_channels, widths)
        self.out = nn.Linear(self.mlp.out_channels, 9)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.copy_(torch.eye(3).flatten())

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)`` -> ``(B, 3, 3)``; the cloud is transformed as ``xyz @ matrix``."""
        return self.out(self.mlp(self.points(xyz, max_pool_dim=1))).view(-1, 3, 3)

    def forward_reference(self, xyz: torch.Tensor) -> torch.Tensor:
        return self.out(self.mlp(self.points(xyz).max(dim=1).values)).view(-1, 3, 3)


@BACKBONES.register("pointnet")
class PointNet(nn.Module):
    """PointNet segmentation backbone: shared per-point MLPs and a max-pool (optional input T-Net).

    Args:
        in_channels: feature channels given with the points (0 = coordinates only).
        input_transform: learn the 3 x 3 input transform (:class:`InputTransform`).
        local_widths: per-point MLP before the global one; its output is the local feature.
        global_widths: per-point MLP whose max over the points is the global feature.
        head_widths: MLP on ``[local, global]`` giving the per-point output.
    """

    def __init__(self, in_channels: int = 0, input_transform: bool = True, local_widths: Sequence[int] = (64, 64),
                 global_widths: Sequence[int] = (64, 128, 1024), head_widths: Sequence[int] = (512, 256, 128)):
        super().__init__()
        self.in_channels = int(in_channels)
        self.transform = InputTransform() if input_transform else None
        self.local = SharedMLP(3 + self.in_channels, local_widths)
        self.global_mlp = SharedMLP(self.local.out_channels, global_widths)
        self.head = LocalGlobalHead(self.local.out_channels, self.global_mlp.out_channels, head_widths)

    @property
    def out_channels(self) -> int:
        return self.head.out_channels

    @property
    def global_channels(self) -> int:
        return self.global_mlp.out_channels

    @property
    def min_points(self) -> int:
        return 1

    def forward(self, xyz: torch.Tensor, features: torch.Tensor | None = None):
        """``xyz (B, N, 3)``, ``features (B, N, in_channels)`` or None -> per-point ``(B, N, out_channels)``,
        global ``(B, global_channels)``."""
        check_inputs(xyz, features, self.in_channels)
        if self.transform is not None:
            xyz = xyz @ self.transform(xyz)
        local = self.local(point_inputs(xyz, features))
        global_ = self.global_mlp(local, max_pool_dim=1)
        return self.head(local, global_), global_

    def forward_reference(self, xyz: torch.Tensor, features: torch.Tensor | None = None):
        """Same as :meth:`forward`, computed literally (separate max-pools, concatenated head input)."""
        check_inputs(xyz, features, self.in_channels)
        if self.transform is not None:
            xyz = torch.bmm(xyz, self.transform.forward_reference(xyz))
        local = self.local(point_inputs(xyz, features))
        global_ = self.global_mlp(local).max(dim=1).values
        return self.head.forward_reference(local, global_), global_
