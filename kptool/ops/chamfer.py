"""Chamfer distance between batched point clouds."""

from __future__ import annotations

import torch

from kptool.ops._checks import check_lengths, check_points, check_same_device
from kptool.ops.neighbors import gather, knn_indices

REDUCTIONS = ("mean", "sum", "none")


def chamfer_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    x_lengths: torch.Tensor | None = None,
    y_lengths: torch.Tensor | None = None,
    squared: bool = True,
    two_sided: bool = True,
    reduction: str = "mean",
):
    """Chamfer distance: each point's distance to its nearest point of the other cloud.

    Args:
        x: ``(B, N, 3)``.
        y: ``(B, M, 3)``, same device and batch size.
        x_lengths, y_lengths: ``(B,)`` valid rows per cloud (default: all).
        squared: use squared Euclidean distances (True) or Euclidean ones. The
            Euclidean distance has gradient 0 where it is exactly 0.
        two_sided: add the ``y -> x`` term to the ``x -> y`` one.
        reduction:
            - ``"mean"``: scalar, the batch mean of (mean over ``x`` of ``d(x, y)``
              + mean over ``y`` of ``d(y, x)`` when two-sided), PyTorch3D's default;
            - ``"sum"``: scalar, the same with sums over points and clouds;
            - ``"none"``: a tuple ``(dist_x (B, N), dist_y (B, M) or None)`` of
              per-point distances to the nearest point of the other cloud (0 on
              padded rows; ``dist_y`` is None when one-sided).

    Nearest neighbours are found without autograd (k-d tree on CPU, chunked
    brute force on CUDA, never an ``N x M`` matrix); the distances are then
    recomputed from the gathered points, so gradients reach both ``x`` and ``y``.
    """
    check_points("x", x)
    check_points("y", y, batch=x.shape[0])
    check_same_device(x=x, y=y)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    B, N, _ = x.shape
    M = y.shape[1]
    x_lengths = check_lengths("x_lengths", x_lengths, B, N, x.device)
    y_lengths = check_lengths("y_lengths", y_lengths, B, M, x.device)
    dist_x = _nearest_distances(x, y, x_lengths, y_lengths, squared)
    dist_y = _nearest_distances(y, x, y_lengths, x_lengths, squared) if two_sided else None
    if reduction == "none":
        return dist_x, dist_y
    if reduction == "sum":
        return dist_x.sum() + (dist_y.sum() if two_sided else 0)
    total = dist_x.sum(1) / x_lengths
    if two_sided:
        total = total + dist_y.sum(1) / y_lengths
    return total.mean()


def _nearest_distances(a, b, a_lengths, b_lengths, squared) -> torch.Tensor:
    """``(B, N)`` distance of each ``a`` point to its nearest ``b`` point, 0 on padding."""
    idx = knn_indices(a, b, 1, a_lengths, b_lengths)[..., 0]
    d = (a - gather(b, idx)).square().sum(-1)
    if not squared:
        # sqrt has an infinite derivative at 0: take 0 there instead (double where
        # so that no NaN reaches the gradient through the unused branch).
        positive = d > 0
        d = torch.where(positive, torch.where(positive, d, 1.0).sqrt(), 0.0)
    valid = torch.arange(a.shape[1], device=a.device) < a_lengths[:, None]
    return torch.where(valid, d, 0.0)
