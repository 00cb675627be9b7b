"""Jigsaw3D pretext (Sauder & Sievers, NeurIPS 2019), the baseline ParAE compares with.

Each shape's bounding box is cut into ``k x k x k`` equal cells; the cells are moved to
a random permutation of their places (every point of a cell translated by the same
offset), and a per-point network must say which cell each point came from: per-point
classification over ``k^3`` classes with cross-entropy.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from kptool.ops._checks import check_points, check_positive_int


class Jigsaw(NamedTuple):
    """``points (B, N, 3)`` after moving the cells; ``labels (B, N)`` int64: each point's original cell."""

    points: torch.Tensor
    labels: torch.Tensor


def cell_index(points: torch.Tensor, cells_per_axis: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cells of each shape's bounding box: ``(index (B, N) int64, cell size (B, 3), box minimum (B, 3))``.

    Cell ``(a, b, c)`` along (x, y, z) has index ``a k^2 + b k + c``; points on the box's
    upper faces belong to the last cell.
    """
    check_points("points", points)
    k = check_positive_int("cells_per_axis", cells_per_axis)
    lo = points.amin(dim=1)
    size = ((points.amax(dim=1) - lo) / k).clamp_min(torch.finfo(points.dtype).tiny)
    abc = ((points - lo[:, None]) / size[:, None]).floor().long().clamp_(0, k - 1)   # (B, N, 3)
    return abc[..., 0] * k * k + abc[..., 1] * k + abc[..., 2], size, lo


def _cell_corner(index: torch.Tensor, k: int) -> torch.Tensor:
    """``(..., 3)`` integer (a, b, c) of cell indices."""
    return torch.stack([index // (k * k), (index // k) % k, index % k], dim=-1)


def jigsaw_shuffle(points: torch.Tensor, cells_per_axis: int = 3, generator: torch.Generator | None = None) -> Jigsaw:
    """Move the ``k^3`` cells of each shape to a random permutation of their places.

    Args:
        points: ``(B, N, 3)``.
        cells_per_axis: k (the reference uses 3: 27 classes).
        generator: for reproducible permutations (on the points' device).

    Returns:
        :class:`Jigsaw`: the moved points and each point's original cell index.
    """
    k = check_positive_int("cells_per_axis", cells_per_axis)
    labels, size, _ = cell_index(points, k)
    batch, cells = points.shape[0], k ** 3
    perm = torch.argsort(torch.rand(batch, cells, generator=generator, device=points.device), dim=1)  # (B, k^3)
    target = torch.gather(perm, 1, labels)                                                            # (B, N)
    shift = (_cell_corner(target, k) - _cell_corner(labels, k)).to(points.dtype) * size[:, None]
    return Jigsaw(points + shift, labels)


def jigsaw_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(B,)`` mean per-point cross-entropy of ``logits (B, N, k^3)`` against ``labels (B, N)``."""
    check_points("logits", logits, channels=None)
    if labels.shape != logits.shape[:2]:
        raise ValueError(f"labels must be (B, N) = {tuple(logits.shape[:2])}, got {tuple(labels.shape)}")
    ce = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")                            # (B, N)
    return ce.mean(dim=1)
