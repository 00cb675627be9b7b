"""Input checks and nearest-neighbour helpers shared by the metrics."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from kptool.errors import KptoolError


def as_points(array, what: str) -> np.ndarray:
    """``array`` as ``(K, 3)`` float64 (K may be 0); raise KptoolError otherwise."""
    a = np.asarray(array, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise KptoolError(f"{what}: expected an array of shape (K, 3), got {a.shape}")
    return a


def check_lengths(name: str, **seqs: Sequence) -> int:
    """All sequences have the same, non-zero length; return it."""
    lengths = {k: len(v) for k, v in seqs.items()}
    if len(set(lengths.values())) != 1:
        raise KptoolError(f"{name}: inputs have different numbers of shapes ({lengths})")
    n = next(iter(lengths.values()))
    if n == 0:
        raise KptoolError(f"{name}: no shapes to evaluate")
    return n


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(A, 3)``, ``(B, 3)`` -> ``(A, B)`` squared Euclidean distances, computed as the
    references do (difference first, then sum of squares) so that argmin ties agree."""
    return np.sum(np.square(a[:, None, :] - b[None, :, :]), axis=-1)


def nearest_index(queries: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(Q, 3)``, ``(N, 3)`` -> ``(Q,)`` index of the nearest point (lowest index on ties)."""
    return np.argmin(squared_distances(queries, points), axis=1)


def check_scales(scales: Sequence[float] | None, n: int) -> np.ndarray:
    """Per-shape positive scale factors (ones when ``None``)."""
    if scales is None:
        return np.ones(n)
    s = np.asarray(scales, dtype=np.float64).reshape(-1)
    if s.shape[0] != n or not np.all(s > 0):
        raise KptoolError(f"scales: expected {n} positive numbers")
    return s
