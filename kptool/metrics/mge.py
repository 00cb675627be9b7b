"""Mean geodesic error (mGE) of dense embeddings against correspondence sets (paper 002, Alg. 1).

For every correspondence set C and every ordered pair of its points (p on shape i,
q on shape j) with i != j: take p's embedding, find the point x of shape j whose
embedding is nearest to it (Euclidean, ties to the lower index), and score the
geodesic distance on shape j from q to x. The error of a set is the mean over its
pairs; mGE is the unweighted mean over the sets that lie on at least two shapes
(the authors' benchmark code; the paper's Alg. 1 divides by N_Omega N_M^2 instead).

Unreachable pairs (x on another connected part than q) are never scored 0:
``unreachable="max"`` (default) scores them as the largest finite distance from q on
that shape, the worst error a point of q's own part could have had; ``"skip"`` leaves
them out. Either way :attr:`MGEResult.unreachable` counts them. With
``euclidean=True`` the distance from q to x is Euclidean (the authors' option).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from kptool.errors import KptoolError

UNREACHABLE_POLICIES = ("max", "skip")


@dataclass
class MGEResult:
    """mGE and its parts.

    Attributes:
        mge: the unweighted mean over scored sets (NaN when no set lies on two shapes).
        per_set: ``{set id: mean error}`` of the scored sets.
        pairs: ``{set id: number of ordered pairs}``.
        unreachable: ordered pairs whose match lay on another connected part.
        policy: how those were scored (``max`` or ``skip``).
    """

    mge: float
    per_set: dict[int, float] = field(default_factory=dict)
    pairs: dict[int, int] = field(default_factory=dict)
    unreachable: int = 0
    policy: str = "max"

    def to_json(self) -> dict:
        return {"mge": self.mge, "sets": len(self.per_set), "pairs": int(sum(self.pairs.values())),
                "unreachable_pairs": self.unreachable, "unreachable_policy": self.policy,
                "per_set": {str(k): v for k, v in self.per_set.items()},
                "pairs_per_set": {str(k): v for k, v in self.pairs.items()}}


def nearest_embedding(queries: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """``(Q,)`` index of the nearest row of ``embeddings (N, D)`` for each row of ``queries (Q, D)``."""
    q = np.asarray(queries, dtype=np.float64)
    e = np.asarray(embeddings, dtype=np.float64)
    # |q - e|^2 = |q|^2 - 2 q.e + |e|^2; |q|^2 does not change the argmin
    return np.argmin((e * e).sum(1)[None, :] - 2.0 * q @ e.T, axis=1)


def mean_geodesic_error(embeddings: Sequence[np.ndarray], keypoint_ids: Sequence[np.ndarray],
                        point_index: Sequence[np.ndarray], distances: Sequence[np.ndarray] | None = None,
                        points: Sequence[np.ndarray] | None = None, keypoints: Sequence[np.ndarray] | None = None,
                        euclidean: bool = False, unreachable: str = "max") -> MGEResult:
    """mGE of per-shape embeddings (see the module docstring).

    Args:
        embeddings: per shape ``(N_i, D)``.
        keypoint_ids: per shape ``(K_i,)`` set ids.
        point_index: per shape ``(K_i,)`` index of each keypoint's point (its embedding).
        distances: per shape ``(K_i, N_i)`` geodesic distances from each keypoint to every
            point (``extras/geodesic_keypoints``); needed unless ``euclidean``.
        points, keypoints: per shape ``(N_i, 3)`` and ``(K_i, 3)``; needed with ``euclidean``.
        euclidean: score ``||q - x||`` instead of the geodesic distance.
        unreachable: ``"max"`` or ``"skip"`` (module docstring).
    """
    if unreachable not in UNREACHABLE_POLICIES:
        raise KptoolError(f"unknown unreachable policy {unreachable!r}: expected one of "
                          f"{', '.join(UNREACHABLE_POLICIES)}")
    n = len(embeddings)
    if len(keypoint_ids) != n or len(point_index) != n:
        raise KptoolError("mean_geodesic_error: needs ids and point indices for every shape")
    if euclidean:
        if points is None or keypoints is None:
            raise KptoolError("the Euclidean mGE needs the points and keypoints of every shape")
        distances = [np.linalg.norm(np.asarray(k, dtype=np.float64)[:, None] - np.asarray(p, dtype=np.float64)[None],
                                    axis=-1) for k, p in zip(keypoints, points)]
    elif distances is None:
        raise KptoolError("mGE needs geodesic distances from the keypoints (run `kptool prepare geodesics`)")
    ids = [np.asarray(k, dtype=np.int64) for k in keypoint_ids]
    idx = [np.asarray(k, dtype=np.int64) for k in point_index]
    emb = [np.asarray(e, dtype=np.float64) for e in embeddings]
    for i in range(n):
        if len(ids[i]) != len(idx[i]) or len(distances[i]) != len(ids[i]):
            raise KptoolError(f"shape {i}: keypoint ids, point indices and distance rows differ in number")
        if len(idx[i]) and (idx[i].min() < 0 or idx[i].max() >= len(emb[i])):
            raise KptoolError(f"shape {i}: a keypoint's point index is outside its {len(emb[i])} embeddings")

    total: dict[int, float] = {}
    count: dict[int, int] = {}
    missed = 0
    for j in range(n):                       # target shape: one nearest-neighbour search for all queries
        if len(ids[j]) == 0:
            continue
        rows_of = {int(s): r for r, s in enumerate(ids[j].tolist())}   # set id -> keypoint row on j
        queries, targets = [], []
        for i in range(n):
            if i == j:
                continue
            for a, sid in enumerate(ids[i].tolist()):
                b = rows_of.get(int(sid))
                if b is not None:
                    queries.append(emb[i][idx[i][a]])
                    targets.append((int(sid), b))
        if not queries:
            continue
        found = nearest_embedding(np.stack(queries), emb[j])
        dist_j = np.asarray(distances[j], dtype=np.float64)
        for (sid, b), x in zip(targets, found):
            d = dist_j[b, x]
            if not np.isfinite(d):
                missed += 1
                finite = dist_j[b][np.isfinite(dist_j[b])]
                if unreachable == "skip" or len(finite) == 0:
                    continue
                d = float(finite.max())
            total[sid] = total.get(sid, 0.0) + float(d)
            count[sid] = count.get(sid, 0) + 1
    per_set = {s: total[s] / count[s] for s in sorted(total)}
    value = float(np.mean(list(per_set.values()))) if per_set else float("nan")
    return MGEResult(value, per_set, {s: count[s] for s in sorted(count)}, missed, unreachable)
