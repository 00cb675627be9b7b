"""SHOT, the Signature of Histograms of OrienTations (Tombari, Salti and Di Stefano, ECCV 2010).

A local descriptor of every point of a cloud, written from the paper (no installed
library provides it):

1. **Local reference frame.** The neighbours q_i within the support radius R give the
   weighted scatter matrix M = sum (R - d_i)(q_i - p)(q_i - p)^T / sum (R - d_i),
   d_i = |q_i - p|. Its eigenvectors by decreasing eigenvalue are x, y, z. The signs of
   x and z are disambiguated so that most vectors q_i - p point to their positive side
   (on a tie, the sign of the weighted sum of projections decides: our choice, which
   keeps the frame rotation invariant); y = z x x.
2. **Signature.** The sphere of radius R around p, in that frame, is cut into 32
   volumes: 8 azimuth sectors x 2 elevations (above/below the tangent plane) x 2 radii
   (inside/outside R/2). Each volume holds an 11-bin histogram of cos(theta_i) = n_i . z,
   n_i the normal at q_i (here the z axis of q_i's own frame, so that the descriptor
   needs only the points). Each neighbour is spread over neighbouring bins by
   quadrilinear interpolation (cosine, azimuth, elevation, radius); the 352 values are
   normalised to unit length.

The descriptor is invariant to rotations and translations of the cloud (the frame
turns with it). On a plane every normal is parallel to z, so all of a point's mass lies
in the first or last cosine bin of its volumes.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from kptool.errors import KptoolError

AZIMUTH_BINS, ELEVATION_BINS, RADIAL_BINS, COSINE_BINS = 8, 2, 2, 11
DESCRIPTOR_SIZE = AZIMUTH_BINS * ELEVATION_BINS * RADIAL_BINS * COSINE_BINS   # 352
DEFAULT_RADIUS_FRACTION = 0.1   # support radius as a fraction of the bounding-box diagonal


def _neighbourhoods(points: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """``(centre, neighbour)`` index pairs within ``radius`` (each point with itself too), sorted by centre."""
    lists = cKDTree(points).query_ball_point(points, radius)
    centre = np.repeat(np.arange(len(points)), [len(n) for n in lists])
    neighbour = np.concatenate([np.asarray(n, dtype=np.int64) for n in lists])
    return centre, neighbour


def local_reference_frames(points: np.ndarray, radius: float) -> np.ndarray:
    """``(N, 3, 3)`` SHOT frames: rows x, y, z (a right-handed orthonormal basis) of every point."""
    p = np.asarray(points, dtype=np.float64)
    centre, neighbour = _neighbourhoods(p, radius)
    return _frames(p, centre, neighbour, radius)


def _frames(p: np.ndarray, centre: np.ndarray, neighbour: np.ndarray, radius: float) -> np.ndarray:
    n = len(p)
    v = p[neighbour] - p[centre]
    w = radius - np.linalg.norm(v, axis=1)
    weight_sum = np.bincount(centre, weights=w, minlength=n)
    scatter = np.zeros((n, 3, 3))
    for a in range(3):
        for b in range(a, 3):
            scatter[:, a, b] = scatter[:, b, a] = np.bincount(centre, weights=w * v[:, a] * v[:, b], minlength=n)
    scatter /= np.maximum(weight_sum, 1e-300)[:, None, None]
    _, vectors = np.linalg.eigh(scatter)              # ascending eigenvalues, vectors in columns
    x, z = vectors[:, :, 2], vectors[:, :, 0]
    x = x * _sign(x, v, w, centre, n)[:, None]
    z = z * _sign(z, v, w, centre, n)[:, None]
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def _sign(axis: np.ndarray, v: np.ndarray, w: np.ndarray, centre: np.ndarray, n: int) -> np.ndarray:
    """+1 where most neighbour vectors lie on the axis' positive side (ties: weighted sum), else -1."""
    proj = (v * axis[centre]).sum(1)
    # sign(0) = 0: the point itself (and anything in the plane) votes for neither side, so that
    # flipping the eigenvector's arbitrary sign flips the vote exactly
    votes = np.bincount(centre, weights=np.sign(proj), minlength=n)
    tie_break = np.bincount(centre, weights=w * proj, minlength=n)
    return np.where(votes > 0, 1.0, np.where(votes < 0, -1.0, np.where(tie_break >= 0, 1.0, -1.0)))


def _spread(u: np.ndarray, bins: int, circular: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation of positions ``u`` (bin units, bin centres at integers) onto two bins."""
    lo = np.floor(u)
    w_hi = u - lo
    lo = lo.astype(np.int64)
    hi = lo + 1
    if circular:
        return lo % bins, hi % bins, 1.0 - w_hi, w_hi
    below, above = lo < 0, hi > bins - 1
    w_hi = np.where(below, 1.0, np.where(above, 0.0, w_hi))   # beyond the outer centres: all on the end bin
    lo, hi = np.clip(lo, 0, bins - 1), np.clip(hi, 0, bins - 1)
    return lo, hi, 1.0 - w_hi, w_hi


def shot_descriptors(points: np.ndarray, radius: float | None = None) -> np.ndarray:
    """SHOT descriptors of every point.

    Args:
        points: ``(N, 3)`` cloud.
        radius: support radius; default ``DEFAULT_RADIUS_FRACTION`` x the bounding-box diagonal.

    Returns:
        ``(N, 352)`` float32, unit length (all zeros for a point without neighbours).
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) == 0:
        raise KptoolError(f"shot: expected a non-empty (N, 3) point cloud, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise KptoolError("shot: the point cloud contains NaN or inf")
    if radius is None:
        radius = DEFAULT_RADIUS_FRACTION * float(np.linalg.norm(p.max(0) - p.min(0)))
    if not radius > 0:
        raise KptoolError(f"shot: the support radius must be positive, got {radius}")
    centre, neighbour = _neighbourhoods(p, radius)
    frames = _frames(p, centre, neighbour, radius)
    keep = centre != neighbour
    centre, neighbour = centre[keep], neighbour[keep]
    local = np.einsum("eij,ej->ei", frames[centre], p[neighbour] - p[centre])
    dist = np.linalg.norm(local, axis=1)
    cosine = np.clip((frames[neighbour, 2] * frames[centre, 2]).sum(1), -1.0, 1.0)
    azimuth = np.mod(np.arctan2(local[:, 1], local[:, 0]), 2 * np.pi)
    elevation = np.arctan2(local[:, 2], np.hypot(local[:, 0], local[:, 1]))
    parts = [
        _spread((cosine + 1.0) / 2.0 * COSINE_BINS - 0.5, COSINE_BINS, False),
        _spread(azimuth / (2 * np.pi / AZIMUTH_BINS) - 0.5, AZIMUTH_BINS, True),
        _spread((elevation + np.pi / 2) / (np.pi / ELEVATION_BINS) - 0.5, ELEVATION_BINS, False),
        _spread(dist / (radius / RADIAL_BINS) - 0.5, RADIAL_BINS, False),
    ]
    strides = (1, ELEVATION_BINS * RADIAL_BINS * COSINE_BINS, RADIAL_BINS * COSINE_BINS, COSINE_BINS)
    n = len(p)
    hist = np.zeros(n * DESCRIPTOR_SIZE)
    for corner in range(16):                          # the 2^4 corners of the quadrilinear interpolation
        index = centre * DESCRIPTOR_SIZE
        weight = np.ones(len(centre))
        for d, (lo, hi, w_lo, w_hi) in enumerate(parts):
            upper = (corner >> d) & 1
            index = index + (hi if upper else lo) * strides[d]
            weight = weight * (w_hi if upper else w_lo)
        hist += np.bincount(index, weights=weight, minlength=n * DESCRIPTOR_SIZE)
    hist = hist.reshape(n, DESCRIPTOR_SIZE)
    norm = np.linalg.norm(hist, axis=1, keepdims=True)
    return (hist / np.where(norm > 0, norm, 1.0)).astype(np.float32)
