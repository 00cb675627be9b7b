"""Intrinsic Shape Signatures (Zhong 2009) keypoints, as Open3D computes them.

Re-implements ``open3d.geometry.keypoint.compute_iss_keypoints`` (Open3D 0.12+,
ISSKeypoints.cpp): for each point, the covariance of its neighbours within
``salient_radius`` (mean-centred, divided by their count: each neighbour weighs
1/|neighbourhood|), eigenvalues e1 >= e2 >= e3; a point is salient when it has
at least ``min_neighbors`` neighbours, ``e2/e1 < gamma_21`` and
``e3/e2 < gamma_32``, with saliency e3; keypoints are salient points with at
least ``min_neighbors`` neighbours within ``non_max_radius`` and no neighbour of
larger saliency there. Radii default (when either is 0) to 6x and 4x the mean
distance from each point to its nearest other point.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from kptool.baselines.neighbours import local_maxima, neighbourhood_covariance, radius_neighbours


def model_resolution(points: np.ndarray, tree: cKDTree | None = None) -> float:
    """Mean distance from each point of a ``(N, 3)`` cloud to its nearest other point."""
    p = np.asarray(points, dtype=np.float64)
    tree = cKDTree(p) if tree is None else tree
    d, _ = tree.query(p, k=2)
    return float(d[:, 1].mean())


def iss_saliency(points: np.ndarray, salient_radius: float = 0.0, non_max_radius: float = 0.0,
                 gamma_21: float = 0.975, gamma_32: float = 0.975,
                 min_neighbors: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """ISS keypoints of a ``(N, 3)`` cloud.

    Returns:
        ``(P,)`` int64 indices of the keypoints (ascending), and ``(N,)`` float64
        saliency of every point (its smallest eigenvalue e3 where the ratio tests
        pass, else 0), as Open3D's ``third_eigen_values``.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    tree = cKDTree(p)
    if salient_radius == 0.0 or non_max_radius == 0.0:
        resolution = model_resolution(p, tree)
        salient_radius, non_max_radius = 6 * resolution, 4 * resolution

    indptr, indices = radius_neighbours(tree, p, salient_radius)
    count = np.diff(indptr)
    cov = neighbourhood_covariance(p, indptr, indices)                            # (N, 3, 3)
    # Open3D skips points with too few neighbours and covariances that are zero to 1e-12.
    usable = (count >= min_neighbors) & (np.abs(cov).reshape(-1, 9).max(axis=1) > 1e-12)
    eig = np.zeros((p.shape[0], 3))
    eig[usable] = np.linalg.eigh(cov[usable])[0]                                   # ascending
    e3, e2, e1 = eig[:, 0], eig[:, 1], eig[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        salient = usable & (e2 / e1 < gamma_21) & (e3 / e2 < gamma_32)
    saliency = np.where(salient, e3, 0.0)

    indptr, indices = radius_neighbours(tree, p, non_max_radius)
    keep = (saliency > 0) & (np.diff(indptr) >= min_neighbors) & local_maxima(saliency, indptr, indices)
    return np.flatnonzero(keep), saliency
