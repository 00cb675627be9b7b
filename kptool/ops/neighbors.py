"""Neighbourhoods: gather, k-nearest neighbours (any dimension), ball query, 3-NN interpolation.

Each public op dispatches on the device: CUDA tensors take the pure-torch path
(``*_torch`` here, chunked so that no full query x point matrix is held), CPU
tensors the numba kernels in :mod:`kptool.ops._cpu`. Neighbour *indices* are
found without autograd; distances that are returned are recomputed from the
gathered points in the input dtype, so they carry gradients to both inputs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from kptool.ops import _cpu
from kptool.ops._checks import check_lengths, check_points, check_positive_int, check_same_device

KNN_LEAF_SIZE = 32
# Entries of the distance table of one block of queries in the CPU kNN for D != 3 (4 MB: stays in cache).
KNN_BLOCK_ELEMENTS = 1 << 20
# Elements of the (B, chunk, N, D) difference tensor in one step of the torch paths.
TORCH_CHUNK_ELEMENTS = 1 << 25
# Exponents of the distance in three_nn_interpolate's weights: 2 is PointNet++'s, 1 kptool 0.1's.
INTERPOLATION_POWERS = (1, 2)


def gather(features: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows of ``features`` picked per cloud: ``out[b, i..., :] = features[b, idx[b, i...], :]``.

    Args:
        features: ``(B, N, C)`` tensor (points or features).
        idx: ``(B, ...)`` integer indices in ``[0, N)``.

    Returns:
        ``(B, ..., C)``; differentiable with respect to ``features``.
    """
    if not isinstance(features, torch.Tensor) or features.dim() != 3:
        raise ValueError(f"features must be a (B, N, C) tensor, got {_shape(features)}")
    if not isinstance(idx, torch.Tensor) or idx.dim() < 1 or idx.shape[0] != features.shape[0]:
        raise ValueError(f"idx must be a (B, ...) tensor with B={features.shape[0]}, got {_shape(idx)}")
    if idx.dtype.is_floating_point or idx.dtype == torch.bool:
        raise TypeError(f"idx must be integer, got {idx.dtype}")
    check_same_device(features=features, idx=idx)
    B, N, C = features.shape
    if idx.numel():
        lo, hi = (int(v) for v in torch.aminmax(idx))
        if lo < 0 or hi >= N:
            raise ValueError(f"idx values must lie in [0, {N}), got [{lo}, {hi}]")
    # index_select on the flattened batch is ~20% faster (forward + backward) than gather on CPU.
    offsets = torch.arange(B, device=idx.device, dtype=torch.int64).mul_(N).view(B, *([1] * (idx.dim() - 1)))
    rows = (idx.to(torch.int64) + offsets).reshape(-1)
    return features.reshape(B * N, C).index_select(0, rows).reshape(*idx.shape, C)


class KNN(NamedTuple):
    """Result of :func:`knn` (unpacks as ``dists, idx``)."""

    dists: torch.Tensor  # (B, M, k) squared distances, nearest first
    idx: torch.Tensor  # (B, M, k) int64 indices into the points


def knn(
    query: torch.Tensor,
    points: torch.Tensor,
    k: int,
    query_lengths: torch.Tensor | None = None,
    points_lengths: torch.Tensor | None = None,
) -> KNN:
    """The ``k`` nearest ``points`` of every query point, in any dimension D.

    Args:
        query: ``(B, M, D)``: coordinates (D = 3) or features (e.g. DGCNN's EdgeConv).
        points: ``(B, N, D)``, same device, batch size and D.
        k: number of neighbours.
        query_lengths, points_lengths: ``(B,)`` valid rows per cloud (default: all).

    Returns:
        :class:`KNN` ``(dists, idx)``: squared distances ``(B, M, k)`` in the dtype of
        ``query``, differentiable with respect to both inputs, and int64 indices
        ``(B, M, k)`` into ``points``, nearest first (exact ties: lowest index first on
        CPU, unspecified order on CUDA). When a cloud has fewer than ``k`` points the
        missing slots repeat the nearest neighbour. Rows of padded queries hold index 0
        on CPU and are meaningless on CUDA; mask them with ``query_lengths``.

    CPU, D = 3: a k-d tree per cloud (numba). CPU, other D: blocks of queries against
    the whole cloud, a BLAS distance table to find the candidates and their exact
    distances to rank them (:func:`knn_blocks`). Both search in float32; when no gradient
    is needed and both inputs are float32 their distances are returned as they are,
    otherwise they are recomputed from the gathered points in the input dtype. CUDA: chunked brute force (memory ``O(B * chunk * N * D)``, never ``M x N``
    at once).
    """
    check_points("query", query, channels=None)
    check_points("points", points, batch=query.shape[0], channels=query.shape[-1])
    check_same_device(query=query, points=points)
    check_positive_int("k", k)
    B, M, _ = query.shape
    N = points.shape[1]
    query_lengths = check_lengths("query_lengths", query_lengths, B, M, query.device)
    points_lengths = check_lengths("points_lengths", points_lengths, B, N, query.device)
    d2, idx = _search(query, points, k, query_lengths, points_lengths)
    needs_grad = torch.is_grad_enabled() and (query.requires_grad or points.requires_grad)
    if d2 is not None and query.dtype == points.dtype == torch.float32 and not needs_grad:
        return KNN(d2, idx)  # the CPU kernel's float32 distances are already the answer
    return KNN((query[:, :, None, :] - gather(points, idx)).square().sum(-1), idx)


def knn_indices(query, points, k, query_lengths, points_lengths) -> torch.Tensor:
    """Indices half of :func:`knn` on validated inputs (no autograd)."""
    return _search(query, points, k, query_lengths, points_lengths)[1]


def _search(query, points, k, query_lengths, points_lengths):
    """``(float32 squared distances or None, indices)`` from the device's kNN path."""
    if query.is_cuda:
        return None, knn_torch(query, points, k, points_lengths)
    if query.shape[-1] != 3:
        return knn_blocks(query, points, k, query_lengths, points_lengths)
    d2, idx = _cpu.knn(_cpu.f32(query), query_lengths.numpy(), _cpu.f32(points), points_lengths.numpy(), k,
                       KNN_LEAF_SIZE)
    return torch.from_numpy(d2), torch.from_numpy(idx)


def knn_blocks(query, points, k, query_lengths, points_lengths) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU kNN in any dimension: ``(B, M, D), (B, N, D)`` -> float32 ``d2 (B, M, k)``, ``idx (B, M, k)``.

    Per block of queries, the dot products with every point are one matrix product
    (BLAS; both clouds centred on the points' mean first, which keeps the norms and so
    the rounding error small); :func:`kptool.ops._cpu.knn_rows` turns them into rough
    distances and ranks the few candidates that rounding could reorder by their exact
    distances. The error of a float32 dot product of length D is at most ``D u |q| |p|``
    (u = 2^-24, any summation order); ``delta`` allows ``2 (D + 8) u (|q|^2 + 2 max |p|^2)``,
    which also covers the norms, the subtraction and the rounding of the centring.
    """
    B, M, D = query.shape
    q32, p32 = _cpu.f32(query), _cpu.f32(points)
    d_out = np.zeros((B, M, k), np.float32)
    i_out = np.zeros((B, M, k), np.int64)
    unit = 2.0 * (D + 8) * 2.0**-24
    for b in range(B):
        n, m = int(points_lengths[b]), int(query_lengths[b])
        p, q = torch.from_numpy(p32[b, :n]), torch.from_numpy(q32[b, :m])
        centre = p.mean(0)
        pc, qc = p - centre, q - centre
        pn = pc.square().sum(1)
        delta = (qc.square().sum(1) + 2 * pn.max()).mul_(unit).numpy()
        rows = max(1, KNN_BLOCK_ELEMENTS // n)
        for r0 in range(0, m, rows):
            r1 = min(m, r0 + rows)
            dots = torch.mm(qc[r0:r1], pc.T)
            _cpu.knn_rows(dots.numpy(), pn.numpy(), delta[r0:r1], q32[b, r0:r1], p32[b, :n], n, k, d_out[b, r0:r1],
                          i_out[b, r0:r1])
    return torch.from_numpy(d_out), torch.from_numpy(i_out)


def knn_torch(query: torch.Tensor, points: torch.Tensor, k: int, points_lengths: torch.Tensor) -> torch.Tensor:
    """Chunked brute-force kNN on any device: ``(B, M, D), (B, N, D), k, (B,)`` -> idx ``(B, M, k)``."""
    B, M, _ = query.shape
    N = points.shape[1]
    kk = min(k, N)
    invalid = (torch.arange(N, device=points.device) >= points_lengths[:, None])[:, None, :]
    parts = []
    for d2 in _chunked_d2(query.detach(), points.detach()):
        parts.append(d2.masked_fill_(invalid, float("inf")).topk(kk, dim=-1, largest=False, sorted=True).indices)
    idx = torch.cat(parts, dim=1)
    slots = torch.arange(k, device=points.device)
    idx = idx[..., torch.clamp(slots, max=kk - 1)]
    return torch.where((slots < points_lengths[:, None])[:, None, :], idx, idx[..., :1])


def ball_query(
    query: torch.Tensor,
    points: torch.Tensor,
    radius: float,
    max_samples: int,
    query_lengths: torch.Tensor | None = None,
    points_lengths: torch.Tensor | None = None,
    empty: str = "nearest",
) -> torch.Tensor:
    """PointNet++ ball query: up to ``max_samples`` points within ``radius`` of each query.

    Args:
        query: ``(B, M, 3)`` centres.
        points: ``(B, N, 3)``.
        radius: a point is a neighbour when its squared distance is strictly below
            ``radius**2`` (as in the PointNet++ CUDA kernel).
        max_samples: ``S``, neighbours returned per query.
        query_lengths, points_lengths: ``(B,)`` valid rows per cloud (default: all).
        empty: what a query without neighbours gets: ``"nearest"`` (its nearest
            point; the default, safe for grouping) or ``"zero"`` (index 0, what the
            PointNet++ CUDA kernel leaves there).

    Returns:
        ``(B, M, S)`` int64: the first ``S`` neighbours in index order (not nearest
        first), missing slots padded with the first neighbour.

    Both paths scan the points in index order (CPU: stopping at ``S`` neighbours,
    as the PointNet++ kernel does; CUDA: in chunks of queries), so the cost is
    ``O(M N)`` at worst and the memory stays bounded.
    """
    check_points("query", query)
    check_points("points", points, batch=query.shape[0])
    check_same_device(query=query, points=points)
    check_positive_int("max_samples", max_samples)
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius!r}")
    if empty not in ("nearest", "zero"):
        raise ValueError(f"empty must be 'nearest' or 'zero', got {empty!r}")
    B, M, _ = query.shape
    N = points.shape[1]
    query_lengths = check_lengths("query_lengths", query_lengths, B, M, query.device)
    points_lengths = check_lengths("points_lengths", points_lengths, B, N, query.device)
    if query.is_cuda:
        return ball_query_torch(query, points, radius, max_samples, points_lengths, empty)
    r2 = np.float32(float(radius) ** 2)  # what a float32 comparison with radius**2 uses on CUDA too
    out = _cpu.ball_query(_cpu.f32(query), query_lengths.numpy(), _cpu.f32(points), points_lengths.numpy(), r2,
                          max_samples, empty == "nearest")
    return torch.from_numpy(out)


def ball_query_torch(query, points, radius, max_samples, points_lengths, empty="nearest") -> torch.Tensor:
    """Chunked ball query on any device; arguments as :func:`ball_query`, validated."""
    N = points.shape[1]
    S = min(max_samples, N)
    r2 = float(radius) ** 2
    invalid = (torch.arange(N, device=points.device) >= points_lengths[:, None])[:, None, :]
    order = torch.arange(N, device=points.device)
    parts = []
    for d2 in _chunked_d2(query.detach(), points.detach()):
        d2.masked_fill_(invalid, float("inf"))
        inside = d2 < r2
        # The S smallest indices among the neighbours: non-neighbours sort last as N.
        first = torch.where(inside, order, N).topk(S, dim=-1, largest=False, sorted=True).values
        count = inside.sum(-1, keepdim=True)
        fill = d2.argmin(-1, keepdim=True) if empty == "nearest" else torch.zeros_like(count)
        fill = torch.where(count > 0, first[..., :1], fill)
        parts.append(torch.where(torch.arange(S, device=points.device) < count, first, fill))
    out = torch.cat(parts, dim=1)
    if max_samples > S:
        out = torch.cat([out, out[..., :1].expand(-1, -1, max_samples - S)], dim=-1)
    return out


def three_nn_interpolate(
    unknown: torch.Tensor,
    known: torch.Tensor,
    known_feats: torch.Tensor,
    known_lengths: torch.Tensor | None = None,
    eps: float = 1e-8,
    power: int = 2,
) -> torch.Tensor:
    """Features at ``unknown`` points by inverse-distance weighting of the 3 nearest ``known`` ones.

    PointNet++ feature propagation: ``w_j = 1 / (|u - k_j|**power + eps)``, normalised
    to sum to 1. ``power=2`` (squared distance) is PointNet++'s weighting; ``power=1``
    (Euclidean distance) is what kptool 0.1 used; models trained with it keep it.
    With fewer than 3 known points only the existing ones are used.

    Args:
        unknown: ``(B, n, 3)`` where features are wanted.
        known: ``(B, m, 3)`` where they are known.
        known_feats: ``(B, m, C)``.
        known_lengths: ``(B,)`` valid rows of ``known`` (default: all).
        eps: added to the distance term (keeps a coincident point finite).
        power: 1 or 2, see above.

    Returns:
        ``(B, n, C)``, differentiable with respect to ``known_feats``. The weights are
        treated as constants (no gradient to the coordinates), as in PointNet++.
    """
    check_points("unknown", unknown)
    check_points("known", known, batch=unknown.shape[0])
    check_points("known_feats", known_feats, batch=unknown.shape[0], channels=None)
    check_same_device(unknown=unknown, known=known, known_feats=known_feats)
    B, n, _ = unknown.shape
    m = known.shape[1]
    if known_feats.shape[1] != m:
        raise ValueError(f"known_feats has {known_feats.shape[1]} rows, known has {m}")
    if power not in INTERPOLATION_POWERS:
        raise ValueError(f"power must be 1 or 2, got {power!r}")
    known_lengths = check_lengths("known_lengths", known_lengths, B, m, unknown.device)
    query_lengths = torch.full_like(known_lengths, n)
    with torch.no_grad():
        idx = knn_indices(unknown, known, 3, query_lengths, known_lengths)
        d2 = (unknown[:, :, None, :] - gather(known, idx)).square().sum(-1)
        w = 1.0 / ((d2 if power == 2 else d2.sqrt()) + eps)
        w = w * (torch.arange(3, device=w.device) < known_lengths[:, None])[:, None, :]
        w = w / w.sum(-1, keepdim=True)
    return (gather(known_feats, idx) * w[..., None].to(known_feats.dtype)).sum(-2)


def _chunked_d2(query: torch.Tensor, points: torch.Tensor):
    """Yield squared distances ``(B, c, N)`` for successive chunks of ``c`` queries (``(B, M, D)``, ``(B, N, D)``)."""
    B, M, D = query.shape
    N = points.shape[1]
    chunk = max(1, TORCH_CHUNK_ELEMENTS // (D * B * N))
    for q0 in range(0, M, chunk):
        yield (query[:, q0:q0 + chunk, None, :] - points[:, None, :, :]).square().sum(-1)


def _shape(t) -> str:
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__
