"""Harris 3D keypoints (Sipiran & Bustos 2011) as PCL's ``HarrisKeypoint3D`` (HARRIS response).

PCL's recipe, re-implemented: normals by PCA over the neighbours within
``radius`` (the eigenvector of the smallest covariance eigenvalue; points with
fewer than 3 neighbours get none); per point, ``C`` = mean of ``n n^T`` over the
neighbours with normals; response ``k + det(C) - k trace(C)^2`` with k = 0.04
(PCL adds the constant; with unit normals trace(C) = 1 so the response is
det(C)); keypoints are points with response >= ``threshold`` and no neighbour
within ``radius`` of larger response. PCL's optional corner refinement is not done.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from kptool.baselines.iss import model_resolution
from kptool.baselines.neighbours import local_maxima, neighbourhood_covariance, radius_neighbours

HARRIS_K = 0.04


def harris3d_keypoints(points: np.ndarray, radius: float = 0.0, threshold: float = 0.0,
                       normals: np.ndarray | None = None, k: float = HARRIS_K) -> tuple[np.ndarray, np.ndarray]:
    """Harris 3D keypoints of a ``(N, 3)`` cloud.

    Args:
        radius: neighbourhood radius for normals, response and suppression; 0 picks
            6x the cloud resolution (mean nearest-neighbour distance), as ISS does.
        threshold: minimum response (PCL's default 0).
        normals: ``(N, 3)`` normals to use instead of estimating them (NaN = none).
        k: the Harris constant.

    Returns:
        ``(P,)`` int64 keypoint indices (ascending) and the ``(N,)`` float64 response.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    tree = cKDTree(p)
    if radius == 0.0:
        radius = 6 * model_resolution(p, tree)
    indptr, indices = radius_neighbours(tree, p, radius)
    if normals is None:
        normals = np.linalg.eigh(neighbourhood_covariance(p, indptr, indices))[1][:, :, 0]
        normals[np.diff(indptr) < 3] = np.nan
    n = np.asarray(normals, dtype=np.float64)
    valid = np.isfinite(n).all(axis=1)
    nn = np.where(valid[:, None, None], n[:, :, None] * n[:, None, :], 0.0)       # (N, 3, 3)
    sums = np.add.reduceat(nn[indices], indptr[:-1], axis=0)
    with_normal = np.add.reduceat(valid[indices].astype(np.float64), indptr[:-1])
    cov = sums / np.maximum(with_normal, 1.0)[:, None, None]
    trace = np.trace(cov, axis1=1, axis2=2)
    response = np.where(trace != 0, k + np.linalg.det(cov) - k * trace**2, 0.0)
    keep = (response >= threshold) & local_maxima(response, indptr, indices)
    return np.flatnonzero(keep), response
