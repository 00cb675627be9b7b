"""Correspondence sets and the table of mean geodesic distances between them (paper 002).

A correspondence set is every annotated point of a category that carries one semantic
id: KeypointNet's ``semantic_id``, a built-in category's keypoint id, or one
(annotator, set) of a user's ``kptool-correspondences`` file. In a prepared dataset a
shape's keypoint row ``a`` belongs to set ``keypoint_ids[a]`` and sits on point
``keypoint_point_index[a]``.

:func:`set_distance_table` measures D(C_i, C_j), the mean geodesic distance between
the points of two sets over the shapes that carry both (paper eq. 2, averaged over the
pairs that exist rather than divided by the number of all shapes, which would shrink D
for sets missing on some shapes). ``kptool prepare geodesics`` computes it on the train
split and stores, per shape, the rows of its own keypoints: ``extras/set_distances/<id>.npy``
``(K, I)`` float32 with column = set id (I = largest id + 1), what the
geodesic-consistency loss reads for a batch. NaN marks a pair of sets that never
share a train shape (or only on disconnected parts): the loss leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

SET_TABLE = "set_distances"


def correspondence_sets(keypoint_ids: Sequence[np.ndarray | None]) -> dict[int, list[tuple[int, int]]]:
    """``{set id: [(shape position, keypoint row), ...]}`` for per-shape ``(K_i,)`` ids, sets sorted by id."""
    sets: dict[int, list[tuple[int, int]]] = {}
    for shape, ids in enumerate(keypoint_ids):
        for row, sid in enumerate([] if ids is None else np.asarray(ids).tolist()):
            sets.setdefault(int(sid), []).append((shape, row))
    return dict(sorted(sets.items()))


@dataclass
class SetDistances:
    """Mean geodesic distances between correspondence sets.

    Attributes:
        ids: ``(S,)`` set ids, sorted.
        mean: ``(S, S)`` D(C_i, C_j); NaN where no shape has a reachable pair; 0 on the diagonal.
        pairs: ``(S, S)`` number of point pairs averaged.
        unreachable: point pairs left out because they lie on disconnected parts.
    """

    ids: np.ndarray
    mean: np.ndarray
    pairs: np.ndarray
    unreachable: int

    def by_id(self, size: int | None = None) -> np.ndarray:
        """``(I, I)`` table indexed by set id directly (I = ``size``, default largest id + 1); NaN for ids
        without a value."""
        size = max(size or 0, int(self.ids.max()) + 1 if len(self.ids) else 0)
        out = np.full((size, size), np.nan)
        out[np.ix_(self.ids, self.ids)] = self.mean
        return out

    def rows_for(self, keypoint_ids: np.ndarray, size: int | None = None) -> np.ndarray:
        """``(K, I)`` float32: the rows of a shape's keypoints (what the loss reads per shape)."""
        return self.by_id(size)[np.asarray(keypoint_ids, dtype=np.int64)].astype(np.float32)


def set_distance_table(keypoint_ids: Sequence[np.ndarray], point_index: Sequence[np.ndarray],
                       distances: Sequence[np.ndarray]) -> SetDistances:
    """D(C_i, C_j) from per-shape geodesic tables.

    Args:
        keypoint_ids: per shape ``(K_m,)`` set ids.
        point_index: per shape ``(K_m,)`` index of each keypoint's point.
        distances: per shape ``(K_m, N_m)`` geodesic distance from keypoint row to every
            point (``extras/geodesic_keypoints``); ``inf`` = unreachable.

    On shape m the distance between rows a and b is the mean of ``T[a, idx[b]]`` and
    ``T[b, idx[a]]`` (both directions, as the tables measure from the true keypoint to
    the sampled point nearest the other). Unreachable pairs are left out and counted.
    """
    sets = correspondence_sets(keypoint_ids)
    ids = np.array(list(sets), dtype=np.int64)
    column = {int(s): c for c, s in enumerate(ids)}
    total = np.zeros((len(ids), len(ids)))
    pairs = np.zeros((len(ids), len(ids)), dtype=np.int64)
    unreachable = 0
    for kid, idx, table in zip(keypoint_ids, point_index, distances):
        kid = np.asarray(kid, dtype=np.int64)
        if len(kid) < 2:
            continue
        t = np.asarray(table, dtype=np.float64)[:, np.asarray(idx, dtype=np.int64)]   # (K, K): row -> keypoint point
        d = 0.5 * (t + t.T)
        cols = np.array([column[int(s)] for s in kid])
        a, b = np.triu_indices(len(kid), k=1)
        keep = cols[a] != cols[b]
        a, b = a[keep], b[keep]
        ok = np.isfinite(d[a, b])
        unreachable += int((~ok).sum())
        a, b = a[ok], b[ok]
        np.add.at(total, (cols[a], cols[b]), d[a, b])
        np.add.at(total, (cols[b], cols[a]), d[a, b])
        np.add.at(pairs, (cols[a], cols[b]), 1)
        np.add.at(pairs, (cols[b], cols[a]), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(pairs > 0, total / np.maximum(pairs, 1), np.nan)
    np.fill_diagonal(mean, 0.0)
    return SetDistances(ids, mean, pairs, unreachable)
