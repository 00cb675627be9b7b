"""Composite Chamfer distance (CCD), the reconstruction loss of Skeleton Merger.

A reconstruction is a set of P *skeletons* (point sequences along keypoint pairs),
each with an activation strength ``a_p`` in [0, 1]. CCD between the input cloud X
and the skeletons is the sum of

* fidelity: ``sum_p a_p * mean_{s in skeleton p} min_{x in X} d(s, x) / P`` — every
  active skeleton must lie on the shape;
* coverage: for each input point, the skeletons are visited in order of their
  distance to it, each contributing its distance weighted by its activation until
  the weights reach 1 (``w_i = min(a_i, relu(1 - sum_{j<i} a_j))``), averaged over
  the points; activation mass still missing after all skeletons costs 20 per point —
  every part of the shape must be explained by active skeletons.

Distances are ``sqrt(1e-4 + squared distance)`` (smooth at 0). Values and gradients
match the authors' ``composed_sqrt_chamfer`` (up to ties between equal distances).

The skeletons of a batch are passed concatenated: ``skeleton (B, T, 3)`` with
``counts`` (P,) the number of points of each skeleton (same for every shape, since
the Skeleton Merger decoder picks them per batch), so ``T = sum(counts)``.

Speed: the nearest-point searches (which point, not how far) are done without
autograd — :func:`kptool.ops.knn` for fidelity; for coverage a numba kernel on CPU,
chunked dense distances elsewhere — and
only the chosen pairs are recomputed with gradients, which is exact for ``min``.
"""

from __future__ import annotations

from typing import Sequence

import numba
import numpy as np
import torch

from kptool.ops import knn
from kptool.ops._cpu import run_parallel

SQRT_EPS = 1e-4          # inside the sqrt of every distance (reference value)
MISSING_MASS_COST = 20.0  # per point, for activation mass below 1 after all skeletons


def _check(points: torch.Tensor, skeleton: torch.Tensor, counts: Sequence[int], activations: torch.Tensor):
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be (B, N, 3), got {tuple(points.shape)}")
    if skeleton.dim() != 3 or skeleton.shape[-1] != 3 or skeleton.shape[0] != points.shape[0]:
        raise ValueError(f"skeleton must be (B, T, 3) with B={points.shape[0]}, got {tuple(skeleton.shape)}")
    counts = [int(c) for c in counts]
    if any(c < 1 for c in counts) or sum(counts) != skeleton.shape[1]:
        raise ValueError(f"counts must be positive and sum to T={skeleton.shape[1]}, got sum {sum(counts)}")
    if activations.shape != (points.shape[0], len(counts)):
        raise ValueError(f"activations must be (B, P) = ({points.shape[0]}, {len(counts)}), "
                         f"got {tuple(activations.shape)}")
    return counts


def _sqrt_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(SQRT_EPS + ((a - b) ** 2).sum(-1))


def composite_chamfer_distance_reference(points: torch.Tensor, skeleton: torch.Tensor, counts: Sequence[int],
                                         activations: torch.Tensor) -> torch.Tensor:
    """Plain CCD, a literal loop over skeletons and over the coverage walk (for tests).

    Args:
        points: ``(B, N, 3)`` input clouds.
        skeleton: ``(B, T, 3)`` skeleton points, skeleton after skeleton.
        counts: ``(P,)`` points per skeleton, summing to T.
        activations: ``(B, P)`` activation strengths in [0, 1].

    Returns:
        ``(B,)`` CCD of each shape (fidelity + coverage).
    """
    counts = _check(points, skeleton, counts, activations)
    parts = torch.split(skeleton, counts, dim=1)
    fidelity = points.new_zeros(points.shape[0])
    nearest_per_part = []
    for p, part in enumerate(parts):
        d = _sqrt_dist(points[:, :, None, :], part[:, None, :, :])   # (B, N, count)
        fidelity = fidelity + d.min(dim=1).values.mean(-1) * activations[:, p] / len(parts)
        nearest_per_part.append(d.min(dim=2).values)                 # (B, N)
    dist = torch.stack(nearest_per_part)                             # (P, B, N)
    ordered, order = torch.sort(dist, dim=0)
    remaining = torch.ones_like(ordered[0])
    coverage = points.new_zeros(points.shape[0])
    for i in range(len(parts)):
        a = torch.gather(activations, 1, order[i])                   # (B, N)
        w = torch.minimum(remaining, a)
        coverage = coverage + (ordered[i] * w).mean(-1)
        remaining = remaining - w
    return fidelity + coverage + MISSING_MASS_COST * remaining.mean(-1)


def _nearest_in_each_part(x: np.ndarray, s_t: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``(B, N, 3)`` points, ``(B, 3, T)`` skeleton (coordinates as rows), part bounds ``(P + 1,)``
    -> ``(B, N, P)`` index into T of each part's nearest point (the first one on ties)."""
    out = np.empty((x.shape[0], x.shape[1], starts.shape[0] - 1), dtype=np.int64)
    run_parallel(_nearest_in_each_part_range, x.shape[0] * x.shape[1], x, s_t, starts, out)
    return out


@numba.njit(nogil=True, cache=True)
def _nearest_in_each_part_range(x, s_t, starts, out, task0, task1):  # pragma: no cover - compiled
    """The rows ``task0 <= b * N + n < task1`` of :func:`_nearest_in_each_part` (runs without the GIL)."""
    n_count = x.shape[1]
    p_count = starts.shape[0] - 1
    t_count = s_t.shape[2]
    d = np.empty(t_count, dtype=np.float32)
    for bn in range(task0, task1):
        b = bn // n_count
        n = bn % n_count
        x0, x1, x2 = x[b, n, 0], x[b, n, 1], x[b, n, 2]
        s0, s1, s2 = s_t[b, 0], s_t[b, 1], s_t[b, 2]
        # all distances first (a loop the compiler vectorises), then the per-part argmin
        for t in range(t_count):
            d0 = s0[t] - x0
            d1 = s1[t] - x1
            d2 = s2[t] - x2
            d[t] = d0 * d0 + d1 * d1 + d2 * d2
        for p in range(p_count):
            arg = starts[p]
            for t in range(starts[p] + 1, starts[p + 1]):
                if d[t] < d[arg]:
                    arg = t
            out[b, n, p] = arg


def _nearest_in_each_part_torch(points: torch.Tensor, skeleton: torch.Tensor, counts: list[int],
                                chunk: int = 256) -> torch.Tensor:
    """Device-agnostic :func:`_nearest_in_each_part`: dense squared distances, ``chunk`` points at a time."""
    device = points.device
    p_count, max_count = len(counts), max(counts)
    starts = torch.tensor(np.concatenate([[0], np.cumsum(counts)[:-1]]), device=device)
    # (P, max_count) index into T; padding points at an extra column of +inf distance.
    offs = torch.arange(max_count, device=device)
    pad_index = torch.where(offs[None] < torch.tensor(counts, device=device)[:, None],
                            starts[:, None] + offs[None], skeleton.shape[1])
    cover = []
    for x in points.split(chunk, dim=1):
        d = torch.cdist(x, skeleton).square()                                 # (B, n, T)
        d = torch.cat([d, d.new_full(d.shape[:2] + (1,), float("inf"))], dim=-1)
        arg = d[:, :, pad_index].argmin(-1)                                    # (B, n, P)
        cover.append(pad_index[torch.arange(p_count, device=device), arg])
    return torch.cat(cover, dim=1)


def _nearest_indices(points: torch.Tensor, skeleton: torch.Tensor, counts: list[int]):
    """``(B, T)`` nearest input point of each skeleton point, ``(B, N, P)`` nearest point of each skeleton."""
    fidelity = knn(skeleton, points, 1)[1][..., 0]
    if points.device.type != "cpu":
        return fidelity, _nearest_in_each_part_torch(points, skeleton, counts)
    x = np.ascontiguousarray(points.detach().numpy(), dtype=np.float32)
    s = np.ascontiguousarray(skeleton.detach().numpy().transpose(0, 2, 1), dtype=np.float32)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return fidelity, torch.from_numpy(_nearest_in_each_part(x, s, starts))


def composite_chamfer_distance(points: torch.Tensor, skeleton: torch.Tensor, counts: Sequence[int],
                               activations: torch.Tensor) -> torch.Tensor:
    """Composite Chamfer distance of each shape, vectorised (see the module docstring).

    Args:
        points: ``(B, N, 3)`` input clouds.
        skeleton: ``(B, T, 3)`` skeleton points, skeleton after skeleton.
        counts: ``(P,)`` points per skeleton, summing to T.
        activations: ``(B, P)`` activation strengths in [0, 1].

    Returns:
        ``(B,)`` CCD of each shape; differentiable in ``points``, ``skeleton`` and ``activations``.
    """
    counts = _check(points, skeleton, counts, activations)
    points = points.to(skeleton.dtype)
    with torch.no_grad():
        fid_idx, cover_idx = _nearest_indices(points, skeleton, counts)
    fid_idx, cover_idx = fid_idx.to(points.device), cover_idx.to(points.device)
    bsz, n, p = cover_idx.shape
    part_of = torch.repeat_interleave(torch.arange(p, device=points.device),
                                      torch.tensor(counts, device=points.device))          # (T,)
    counts_t = torch.tensor(counts, device=points.device, dtype=skeleton.dtype)

    nearest = torch.gather(points, 1, fid_idx[..., None].expand(-1, -1, 3))              # (B, T, 3)
    fid_dist = _sqrt_dist(skeleton, nearest)                                               # (B, T)
    per_part = fid_dist.new_zeros(bsz, p).index_add(1, part_of, fid_dist) / counts_t       # (B, P)
    fidelity = (per_part * activations).sum(-1) / p

    # Coverage = sum_i d_i w_i(a) over each point's skeletons in order of distance. Its
    # gradient is sum_i w_i grad d_i + d_i grad w_i: the distances only need gradients
    # where w_i != 0 (the first few skeletons of each point, until the activations reach
    # 1), so the full (B, N, P) distance table is computed without autograd and the
    # contributing entries again with it (their difference is exactly 0 in value).
    with torch.no_grad():
        closest = torch.gather(skeleton, 1, cover_idx.reshape(bsz, n * p, 1).expand(-1, -1, 3)).reshape(bsz, n, p, 3)
        ordered, order = torch.sort(_sqrt_dist(points[:, :, None, :], closest), dim=-1)   # (B, N, P)
    a = torch.gather(activations[:, None, :].expand(-1, n, -1), 2, order)
    before = torch.cumsum(a, dim=-1) - a
    weights = torch.minimum(a, torch.relu(1.0 - before))
    per_point = (ordered * weights).sum(-1)                                                # grad: activations
    if points.requires_grad or skeleton.requires_grad:
        b_i, n_i, k_i = weights.detach().nonzero(as_tuple=True)
        t_i = cover_idx[b_i, n_i, order[b_i, n_i, k_i]]
        # index_select / index_add on flat rows, not advanced indexing: on CPU the backward of
        # x[i, j] (and index_put with accumulate) adds with parallel atomics, whose order, and
        # so the gradient's last bits, changes from run to run; seeded training would not repeat.
        point_row, skeleton_row = b_i * n + n_i, b_i * skeleton.shape[1] + t_i
        d = _sqrt_dist(points.reshape(-1, 3).index_select(0, point_row),
                       skeleton.reshape(-1, 3).index_select(0, skeleton_row))
        per_point = per_point.reshape(-1).index_add(
            0, point_row, weights.detach()[b_i, n_i, k_i] * (d - d.detach())).reshape(bsz, n)  # grad: geometry
    coverage = per_point.mean(-1)
    missing = torch.relu(1.0 - activations.sum(-1))
    return fidelity + coverage + MISSING_MASS_COST * missing
