"""Plain reference implementations of the ops, for tests.

Loops over clouds and points with obvious torch expressions, in the input dtype;
no trees, no chunks, no numba. Slow on purpose: each one states the definition
that the fast op must reproduce. Arguments are as in the public ops, with
``lengths`` and ``start`` given explicitly.
"""

from __future__ import annotations

import torch


def _d2(points: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return ((points - q) ** 2).sum(-1)


def farthest_point_sampling(points, num_samples, lengths, starts) -> torch.Tensor:
    out = torch.empty((points.shape[0], num_samples), dtype=torch.int64)
    for b in range(points.shape[0]):
        p = points[b, : int(lengths[b])]
        chosen = [int(starts[b])]
        nearest = torch.full((len(p),), float("inf"), dtype=p.dtype)
        while len(chosen) < min(num_samples, len(p)):
            nearest = torch.minimum(nearest, _d2(p, p[chosen[-1]]))
            free = torch.ones(len(p), dtype=torch.bool)
            free[chosen] = False
            candidates = torch.where(free, nearest, float("-inf"))
            chosen.append(int((candidates == candidates.max()).nonzero()[0]))  # lowest index on ties
        chosen += [chosen[0]] * (num_samples - len(chosen))
        out[b] = torch.tensor(chosen)
    return out


def knn(query, points, k, query_lengths, points_lengths):
    B, M, _ = query.shape
    dists = torch.zeros((B, M, k), dtype=query.dtype)
    idx = torch.zeros((B, M, k), dtype=torch.int64)
    for b in range(B):
        p = points[b, : int(points_lengths[b])]
        for i in range(int(query_lengths[b])):
            d = _d2(p, query[b, i])
            order = sorted(range(len(p)), key=lambda j: (float(d[j]), j))[:k]
            order += [order[0]] * (k - len(order))
            idx[b, i] = torch.tensor(order)
            dists[b, i] = d[order]
    return dists, idx


def ball_query(query, points, radius, max_samples, query_lengths, points_lengths, empty="nearest"):
    B, M, _ = query.shape
    out = torch.zeros((B, M, max_samples), dtype=torch.int64)
    for b in range(B):
        p = points[b, : int(points_lengths[b])]
        for i in range(int(query_lengths[b])):
            d = _d2(p, query[b, i])
            inside = [j for j in range(len(p)) if d[j] < radius**2][:max_samples]
            if not inside:
                inside = [int(d.argmin()) if empty == "nearest" else 0]
            out[b, i] = torch.tensor(inside + [inside[0]] * (max_samples - len(inside)))
    return out


def gather(features, idx):
    out = torch.empty((*idx.shape, features.shape[-1]), dtype=features.dtype)
    for b in range(idx.shape[0]):
        for pos in torch.cartesian_prod(*[torch.arange(s) for s in idx.shape[1:]]).reshape(-1, idx.dim() - 1):
            out[(b, *pos.tolist())] = features[b, idx[(b, *pos.tolist())]]
    return out


def three_nn_interpolate(unknown, known, known_feats, known_lengths, eps=1e-8, power=2):
    B, n, _ = unknown.shape
    out = torch.zeros((B, n, known_feats.shape[-1]), dtype=known_feats.dtype)
    for b in range(B):
        m = int(known_lengths[b])
        for i in range(n):
            d = _d2(known[b, :m], unknown[b, i])
            near = sorted(range(m), key=lambda j: (float(d[j]), j))[:3]
            w = torch.stack([1.0 / (d[j].sqrt() ** power + eps) for j in near])
            w = w / w.sum()
            out[b, i] = sum(w[t] * known_feats[b, j] for t, j in enumerate(near))
    return out


def chamfer_distance(x, y, x_lengths, y_lengths, squared=True, two_sided=True, reduction="mean"):
    """Through the full distance matrix of each pair of clouds."""
    per_x, per_y = [], []
    for b in range(x.shape[0]):
        xb, yb = x[b, : int(x_lengths[b])], y[b, : int(y_lengths[b])]
        d = ((xb[:, None, :] - yb[None, :, :]) ** 2).sum(-1)
        if not squared:
            d = d.sqrt()
        per_x.append(d.min(1).values)
        per_y.append(d.min(0).values)
    if reduction == "none":
        pad = lambda parts, n: torch.stack([torch.cat([p, p.new_zeros(n - len(p))]) for p in parts])  # noqa: E731
        return pad(per_x, x.shape[1]), pad(per_y, y.shape[1]) if two_sided else None
    if reduction == "sum":
        return sum(p.sum() for p in per_x) + (sum(p.sum() for p in per_y) if two_sided else 0)
    terms = [px.mean() + (py.mean() if two_sided else 0) for px, py in zip(per_x, per_y)]
    return torch.stack(terms).mean()
