"""Points on a triangle mesh: a face and barycentric coordinates, and snapping 3-D points to them."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import trimesh

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


def snap_to_surface(vertices, faces, points) -> SurfacePoints:
    """The nearest surface point of each of ``points`` ``(P, 3)`` on the mesh ``(V, 3)``, ``(F, 3)``.

    Exact nearest point on the triangles (trimesh's ``proximity.closest_point``, an
    r-tree over the faces), expressed as face + barycentric coordinates.
    """
    v, f = check_mesh(vertices, faces)
    p = check_points(to_numpy(points), "points to snap")
    mesh = trimesh.Trimesh(vertices=v, faces=f, process=False, validate=False)
    closest, _, face = trimesh.proximity.closest_point(mesh, p)
    face = np.asarray(face, dtype=np.int64)
    return SurfacePoints(face, _barycentric(v[f[face]], np.asarray(closest, dtype=np.float64)))


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
