"""Points on a triangle mesh: a face and barycentric coordinates, and snapping 3-D points to them."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from kptool.errors import KptoolError
from kptool.geodesic._common import check_indices, check_points, to_numpy


class SurfacePoints(NamedTuple):
    """``S`` points on a mesh: ``face`` ``(S,)`` int64 and ``barycentric`` ``(S, 3)`` weights of its vertices."""

    face: np.ndarray
    barycentric: np.ndarray

    def positions(self, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """``(S, 3)`` coordinates of the points."""
        v = np.asarray(vertices, dtype=np.float64)
        return np.einsum("si,sij->sj", self.barycentric, v[np.asarray(faces)[self.face]])


def check_mesh(vertices, faces) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(V, 3)`` float64 vertices and ``(F, 3)`` int64 faces."""
    v = check_points(to_numpy(vertices), "mesh vertices")
    f = to_numpy(faces)
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise KptoolError(f"mesh faces must have shape (F, 3) with F > 0, got {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        raise KptoolError(f"mesh faces must be integer vertex indices, got {f.dtype}")
    f = check_indices(f.reshape(-1), len(v), "mesh face indices").reshape(-1, 3)
    return v, f


def check_surface_points(points: SurfacePoints, num_faces: int) -> SurfacePoints:
    face = check_indices(to_numpy(points.face), num_faces, "surface point faces")
    bary = np.asarray(to_numpy(points.barycentric), dtype=np.float64)
    if bary.shape != (len(face), 3):
        raise KptoolError(f"barycentric coordinates must have shape ({len(face)}, 3), got {bary.shape}")
    if not np.isfinite(bary).all() or (bary < -1e-6).any() or (np.abs(bary.sum(1) - 1) > 1e-4).any():
        raise KptoolError("barycentric coordinates must be non-negative and sum to 1")
    bary = np.clip(bary, 0.0, None)
    return SurfacePoints(face, bary / bary.sum(1, keepdims=True))


def snap_to_surface(vertices, faces, points, chunk: int = 1024) -> SurfacePoints:
    """The nearest surface point of each of ``points`` ``(P, 3)`` on the mesh ``(V, 3)``, ``(F, 3)``.

    Exact nearest point (trimesh's point-triangle distance) over candidate faces
    from a KD-tree of face centroids: a face can hold a point closer than ``d`` only
    if its centroid is within ``d`` plus its circumradius-like extent. Faces much
    larger than the typical one are always candidates, so a few huge faces (common in
    CAD models) do not blow up every query.
    """
    v, f = check_mesh(vertices, faces)
    p = check_points(to_numpy(points), "points to snap")
    tri = v[f]
    centroid = tri.mean(axis=1)
    extent = np.linalg.norm(tri - centroid[:, None], axis=2).max(axis=1)
    cut = 4.0 * float(np.median(extent))
    large = np.flatnonzero(extent > cut)
    small = np.flatnonzero(extent <= cut)
    tree = cKDTree(centroid[small])

    face = np.empty(len(p), dtype=np.int64)
    for start in range(0, len(p), chunk):
        q = p[start:start + chunk]
        # Upper bound on each point's distance to the surface, from its nearest few centroids.
        _, near = tree.query(q, k=min(8, len(small)))
        near = small[near.reshape(len(q), -1)]
        bound = _closest(tri, q, near).min(axis=1)
        balls = tree.query_ball_point(q, bound + cut + 1e-12)
        counts = np.array([len(b) for b in balls])
        rows = np.repeat(np.arange(len(q)), counts)
        cand = small[np.concatenate([np.asarray(b, dtype=np.int64) for b in balls])]
        if len(large):
            rows = np.concatenate([rows, np.repeat(np.arange(len(q)), len(large))])
            cand = np.concatenate([cand, np.tile(large, len(q))])
        d = np.linalg.norm(trimesh.triangles.closest_point(tri[cand], q[rows]) - q[rows], axis=1)
        order = np.lexsort((d, rows))        # per point, nearest candidate first
        first = np.r_[True, rows[order][1:] != rows[order][:-1]]
        face[start:start + chunk] = cand[order][first]
    closest = trimesh.triangles.closest_point(tri[face], p)
    return SurfacePoints(face, _barycentric(tri[face], closest))


def _closest(tri: np.ndarray, q: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """``(P, C)`` distances from each point to each of its candidate faces."""
    rows = np.repeat(np.arange(len(q)), cand.shape[1])
    c = trimesh.triangles.closest_point(tri[cand.reshape(-1)], q[rows])
    return np.linalg.norm(c - q[rows], axis=1).reshape(cand.shape)


def _barycentric(tri: np.ndarray, points: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        bary = trimesh.triangles.points_to_barycentric(tri, points)
    # A degenerate (zero-area) face has no barycentric frame: put the point on its nearest corner.
    bad = ~np.isfinite(bary).all(axis=1)
    if bad.any():
        corner = np.linalg.norm(tri[bad] - points[bad, None], axis=2).argmin(axis=1)
        bary[bad] = np.eye(3)[corner]
    bary = np.clip(bary, 0.0, None)
    return bary / bary.sum(axis=1, keepdims=True)
