"""Fixed-radius neighbourhoods and non-maximum suppression on a point cloud (scipy KD-tree)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def radius_neighbours(tree: cKDTree, points: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours of each point strictly within ``radius`` (the point itself included).

    Returns CSR arrays: neighbours of point i are ``indices[indptr[i]:indptr[i + 1]]``;
    ``indptr`` ``(N + 1,)`` and ``indices`` ``(P,)`` int64.
    """
    # Open3D's and PCL's radius searches keep d < r; cKDTree keeps d <= r.
    strict = np.nextafter(radius, 0.0)
    lists = tree.query_ball_point(points, strict, return_sorted=True)
    counts = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    indptr = np.concatenate([[0], np.cumsum(counts)])
    indices = np.fromiter((j for x in lists for j in x), dtype=np.int64, count=int(indptr[-1]))
    return indptr, indices


def neighbourhood_mean(values: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``(N, ...)`` per-point values -> ``(N, ...)`` mean over each non-empty neighbourhood."""
    counts = np.diff(indptr)
    sums = np.add.reduceat(values[indices], indptr[:-1], axis=0)
    return sums / counts.reshape(-1, *([1] * (values.ndim - 1)))


def neighbourhood_covariance(points: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``(N, 3, 3)`` covariance of each neighbourhood, mean-centred and divided by its size.

    Computed from the first and second moments, as Open3D's ``ComputeCovariance`` does.
    """
    mean = neighbourhood_mean(points, indptr, indices)
    second = neighbourhood_mean(points[:, :, None] * points[:, None, :], indptr, indices)
    return second - mean[:, :, None] * mean[:, None, :]


def local_maxima(values: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: no neighbour has a strictly larger value (ties all survive)."""
    neighbour_max = np.maximum.reduceat(values[indices], indptr[:-1])
    return values >= neighbour_max
