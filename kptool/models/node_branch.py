"""The node branch of USIP (Li and Lee, ICCV 2019), shared by the shape-basis model and the USIP baseline.

Per shape: M seeds by farthest point sampling from a random quarter of the points
(random start); every point joins its nearest seed; a seed becomes its cluster's mean
and the points are centred on it. A PointNet (3 -> 64 -> 64 -> 64) gives per-point
features, max-pooled per node and concatenated back to the points (128), a second
PointNet (128 -> 128 -> 128) max-pooled per node gives node features; a kNN layer
over the nodes (k = 3: neighbour offsets and features, 256 -> 256 -> 256, max,
concatenated back, 512, max) fuses neighbouring nodes; a head on [node feature |
fused feature] (640 -> 512 -> 256 -> out) predicts each node's offset from its
cluster mean (and, for USIP, a saliency uncertainty sigma).
"""

from __future__ import annotations

from dataclasses import dataclass
import torch
from torch import nn

from kptool.models.backbones.common import SharedMLP
from kptool.ops import farthest_point_sampling, gather, knn


def scatter_max(values: torch.Tensor, index: torch.Tensor, count: int) -> torch.Tensor:
    """Per-group maximum: ``values`` ``(B, N, C)``, ``index`` ``(B, N)`` in ``[0, count)`` -> ``(B, count, C)``.

    Groups without a member get 0.
    """
    b, _, c = values.shape
    out = values.new_full((b, count, c), float("-inf"))
    out = out.scatter_reduce(1, index[..., None].expand(-1, -1, c), values, reduce="amax", include_self=False)
    return torch.where(torch.isfinite(out), out, torch.zeros_like(out))


def group_means(points: torch.Tensor, index: torch.Tensor, count: int) -> torch.Tensor:
    """Mean of each group's points: ``points`` ``(B, N, 3)``, ``index`` ``(B, N)`` -> ``(B, count, 3)``."""
    b = points.shape[0]
    sums = points.new_zeros((b, count, 3)).scatter_add(1, index[..., None].expand(-1, -1, 3), points)
    counts = points.new_zeros((b, count)).scatter_add(1, index, torch.ones_like(index, dtype=points.dtype))
    return sums / counts.clamp(min=1)[..., None]


def seed_nodes(points: torch.Tensor, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(B, count, 3)`` seeds: FPS (random start) over a random quarter of each cloud's points.

    ``points`` ``(B, N, 3)``; needs ``N // 4 >= count`` (else FPS runs over all points).
    """
    b, n, _ = points.shape
    pool = n // 4 if n // 4 >= count else n
    order = torch.argsort(torch.rand(b, n, generator=generator, device="cpu"), dim=1)[:, :pool].to(points.device)
    subset = gather(points, order)
    idx = farthest_point_sampling(subset.detach(), count, start_index="random", generator=generator)
    return gather(subset, idx)


@dataclass
class Nodes:
    """Output of :class:`NodeBranch`: ``nodes`` ``(B, M, 3)`` (cluster mean + offset), ``centres``
    ``(B, M, 3)`` (cluster means), ``extra`` ``(B, M, E)`` further per-node outputs (or None)."""

    nodes: torch.Tensor
    centres: torch.Tensor
    extra: torch.Tensor | None


class NodeBranch(nn.Module):
    """Unordered nodes of a cloud (see the module docstring): ``(B, N, 3)`` -> :class:`Nodes`.

    Args:
        num_nodes: M.
        extra_outputs: per-node outputs besides the 3D offset (USIP's sigma: 1).
        knn: nodes fused per node (3 in the reference).
    """

    def __init__(self, num_nodes: int, extra_outputs: int = 0, knn: int = 3):
        super().__init__()
        self.num_nodes, self.extra_outputs, self.k = int(num_nodes), int(extra_outputs), int(knn)
        self.first = SharedMLP(3, (64, 64))
        self.first_out = nn.Linear(64, 64)                 # the first PointNet's last layer is plain
        self.second = SharedMLP(128, (128, 128, 128))
        self.fuse_a = SharedMLP(3 + 128, (256, 256, 256))
        self.fuse_b = SharedMLP(512, (512,))
        self.head = SharedMLP(128 + 512, (512, 256))
        self.head_out = nn.Linear(256, 3 + self.extra_outputs)
        nn.init.normal_(self.head_out.weight, 0.0, 1e-4)   # nodes start at their cluster means
        nn.init.zeros_(self.head_out.bias)

    def forward(self, points: torch.Tensor, generator: torch.Generator | None = None) -> Nodes:
        m = self.num_nodes
        seeds = seed_nodes(points, m, generator)
        _, nearest = knn(points.detach(), seeds.detach(), 1)
        member = nearest[..., 0]                                       # (B, N) node of each point
        centres = group_means(points, member, m)                        # (B, M, 3)
        local = points - gather(centres, member)                        # (B, N, 3)
        f = self.first_out(self.first(local))                           # (B, N, 64)
        f = torch.cat([f, gather(scatter_max(f, member, m), member)], dim=-1)
        node_feat = scatter_max(self.second(f), member, m)              # (B, M, 128)
        _, nbr = knn(centres.detach(), centres.detach(), min(self.k, m))
        offsets = gather(centres, nbr) - centres[:, :, None, :]         # (B, M, k, 3)
        g = self.fuse_a(torch.cat([offsets, gather(node_feat, nbr)], dim=-1))      # (B, M, k, 256)
        pooled = g.max(dim=2).values
        g = torch.cat([g, pooled[:, :, None, :].expand_as(g)], dim=-1)
        fused = self.fuse_b(g, max_pool_dim=2)                          # (B, M, 512), max over the k
        out = self.head_out(self.head(torch.cat([node_feat, fused], dim=-1)))      # (B, M, 3 + E)
        return Nodes(nodes=centres + out[..., :3], centres=centres,
                     extra=out[..., 3:] if self.extra_outputs else None)
