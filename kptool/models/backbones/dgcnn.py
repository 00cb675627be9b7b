"""DGCNN segmentation backbone (Wang et al., ACM TOG 2019): EdgeConv on graphs rebuilt per layer.

Each EdgeConv links every point to its k = 20 nearest neighbours *in the layer's input
feature space* (the graph changes from layer to layer; the first layer's input is the
coordinates, with any given features) and computes ``max_j h([x_i, x_j - x_i])`` with a
shared MLP h. Defaults are the paper's segmentation network: EdgeConv (64, 64),
(64, 64), (64), the three outputs concatenated (192) and embedded to 1024 channels,
max-pooled into the global feature, and a per-point MLP (256, 256, 128) on
``[local, global]``.

Neighbours come from :func:`kptool.ops.knn` (exact, any dimension, CPU and CUDA).
Exact rewrites (plain forms in ``forward_reference``): the first layer of each EdgeConv
is linear in ``[x_i, x_j - x_i]`` = ``(W_a - W_b) x_i + W_b x_j``, so it is applied once
per point and gathered, not once per edge; the last BatchNorm, ReLU and the max over
neighbours are fused; the head applies the global part of its first layer once per shape.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from kptool import ops
from kptool.models.backbones import BACKBONES
from kptool.models.backbones.common import LocalGlobalHead, SharedMLP, check_inputs, point_inputs


class EdgeConv(nn.Module):
    """``x (B, N, C)`` -> ``(B, N, widths[-1])``: max over the k nearest neighbours j (in x) of
    ``MLP([x_i, x_j - x_i])``. A point is its own nearest neighbour (its edge ``[x_i, 0]``), as
    in the reference."""

    def __init__(self, in_channels: int, widths: Sequence[int], k: int = 20):
        super().__init__()
        self.in_channels, self.k = int(in_channels), int(k)
        self.mlp = SharedMLP(2 * self.in_channels, widths)

    @property
    def out_channels(self) -> int:
        return self.mlp.out_channels

    def neighbours(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, k)`` indices of the k nearest points in feature space (no gradient flows through a choice)."""
        with torch.no_grad():
            return ops.knn(x, x, self.k).idx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = self.neighbours(x)
        w_centre, w_edge = self.mlp.linears[0].weight.split(self.in_channels, dim=1)
        # W_a x_i + W_b (x_j - x_i) = (W_a - W_b) x_i + W_b x_j
        edges = ops.gather(x @ w_edge.T, idx)                                     # (B, N, k, C1)
        # in place: the gathered copy is ours and its backward does not need it
        edges.add_((x @ (w_centre - w_edge).T)[:, :, None, :])
        return self.mlp(edges, skip_first_linear=True, max_pool_dim=2)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        idx = self.neighbours(x)
        centre = x[:, :, None, :].expand(-1, -1, self.k, -1)
        edges = torch.cat([centre, ops.gather(x, idx) - centre], dim=-1)         # (B, N, k, 2C)
        return self.mlp(edges).max(dim=2).values


@BACKBONES.register("dgcnn")
class DGCNN(nn.Module):
    """DGCNN segmentation backbone: EdgeConv layers on k-NN graphs recomputed in feature space.

    Args:
        in_channels: feature channels given with the points (0 = coordinates only).
        k: neighbours per point (paper: 20).
        edge_widths: MLP widths of each EdgeConv layer.
        embedding: channels of the layer on the concatenated EdgeConv outputs, max-pooled
            into the global feature (paper: 1024).
        head_widths: MLP on ``[local, global]`` giving the per-point output.
    """

    def __init__(self, in_channels: int = 0, k: int = 20,
                 edge_widths: Sequence[Sequence[int]] = ((64, 64), (64, 64), (64,)), embedding: int = 1024,
                 head_widths: Sequence[int] = (256, 256, 128)):
        super().__init__()
        if int(k) < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.in_channels = int(in_channels)
        self.edges = nn.ModuleList()
        channels = 3 + self.in_channels
        for widths in edge_widths:
            self.edges.append(EdgeConv(channels, widths, k))
            channels = self.edges[-1].out_channels
        local = sum(e.out_channels for e in self.edges)
        self.embed = SharedMLP(local, (embedding,))
        self.head = LocalGlobalHead(local, self.embed.out_channels, head_widths)

    @property
    def out_channels(self) -> int:
        return self.head.out_channels

    @property
    def global_channels(self) -> int:
        return self.embed.out_channels

    @property
    def min_points(self) -> int:
        return 1

    def forward(self, xyz: torch.Tensor, features: torch.Tensor | None = None):
        """``xyz (B, N, 3)``, ``features (B, N, in_channels)`` or None -> per-point ``(B, N, out_channels)``,
        global ``(B, global_channels)``."""
        return self._run(xyz, features, reference=False)

    def forward_reference(self, xyz: torch.Tensor, features: torch.Tensor | None = None):
        """Same as :meth:`forward`, computed literally (each ``forward_reference``, plain max-pools)."""
        return self._run(xyz, features, reference=True)

    def _run(self, xyz, features, reference: bool):
        check_inputs(xyz, features, self.in_channels)
        x = point_inputs(xyz, features)
        outputs = []
        for edge in self.edges:
            x = edge.forward_reference(x) if reference else edge(x)
            outputs.append(x)
        local = torch.cat(outputs, dim=-1)
        if reference:
            global_ = self.embed(local).max(dim=1).values
            return self.head.forward_reference(local, global_), global_
        global_ = self.embed(local, max_pool_dim=1)
        return self.head(local, global_), global_
