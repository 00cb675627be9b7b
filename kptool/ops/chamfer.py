"""Chamfer distance between batched point clouds."""

from __future__ import annotations

import torch

from kptool.ops import _cpu
from kptool.ops._checks import check_lengths, check_points, check_same_device
from kptool.ops.neighbors import KNN_LEAF_SIZE, gather, knn_indices

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

    Nearest neighbours are found without autograd (k-d trees on CPU, chunked
    brute force on CUDA, never an ``N x M`` matrix); the distances are then
    recomputed from the gathered points, so gradients reach both ``x`` and ``y``
    (on CPU, without a gradient to compute, float32 inputs take the kernel's
    float32 distances as they are).
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
    fast = _nearest_cpu(x, y, x_lengths, y_lengths, two_sided) if not x.is_cuda else None
    dist_x = _distances(x, y, x_lengths, y_lengths, squared, fast and fast[0])
    dist_y = _distances(y, x, y_lengths, x_lengths, squared, fast and fast[1]) if two_sided else None
    if reduction == "none":
        return dist_x, dist_y
    if reduction == "sum":
        return dist_x.sum() + (dist_y.sum() if two_sided else 0)
    total = dist_x.sum(1) / x_lengths
    if two_sided:
        total = total + dist_y.sum(1) / y_lengths
    return total.mean()


def _nearest_cpu(x, y, x_lengths, y_lengths, two_sided):
    """Numba nearest neighbours both ways, one k-d tree per cloud:
    ``((d2_x, idx_x), (d2_y, idx_y) or None)``, float32 squared distances."""
    xn, yn, xl, yl = _cpu.f32(x), _cpu.f32(y), x_lengths.numpy(), y_lengths.numpy()
    tx, ty = _cpu.build_trees(xn, xl, KNN_LEAF_SIZE), _cpu.build_trees(yn, yl, KNN_LEAF_SIZE)
    to_torch = lambda pair: tuple(torch.from_numpy(a) for a in pair)  # noqa: E731
    return to_torch(_cpu.nearest(tx, xl, yn, ty)), (to_torch(_cpu.nearest(ty, yl, xn, tx)) if two_sided else None)


def _distances(a, b, a_lengths, b_lengths, squared, found) -> torch.Tensor:
    """``(B, N)`` distance of each ``a`` point to its nearest ``b`` point, 0 on padding.

    ``found``: the CPU kernel's ``(d2, idx)``, or None to search on ``a``'s device.
    """
    if found is None:
        d = (a - gather(b, knn_indices(a, b, 1, a_lengths, b_lengths)[..., 0])).square().sum(-1)
    elif a.dtype == b.dtype == torch.float32 and not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)):
        d = found[0]  # nothing to differentiate: the kernel's distances are the answer
    else:
        d = (a - gather(b, found[1])).square().sum(-1)  # recomputed with autograd, in the input dtype
    if not squared:
        # sqrt has an infinite derivative at 0: take 0 there instead (double where
        # so that no NaN reaches the gradient through the unused branch).
        positive = d > 0
        d = torch.where(positive, torch.where(positive, d, 1.0).sqrt(), 0.0)
    valid = torch.arange(a.shape[1], device=a.device) < a_lengths[:, None]
    return torch.where(valid, d, 0.0)
