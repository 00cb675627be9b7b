"""Distances from keypoints to the sampled points of a shape, on its mesh when it has one."""

from __future__ import annotations

import numpy as np

from kptool.errors import KptoolError
from kptool.geodesic._common import check_points, like, to_numpy
from kptool.geodesic.cloud import KNN, cloud_geodesics
from kptool.geodesic.mesh import mesh_geodesics
from kptool.geodesic.surface import snap_to_surface

METHODS = ("heat", "exact", "graph")


def distances_to_points(points, sources, vertices=None, faces=None, method: str = "heat", k: int = KNN):
    """Geodesic distances from ``sources`` to every one of a shape's sampled ``points``.

    With a mesh (``vertices`` ``(V, 3)``, ``faces`` ``(F, 3)``) and method
    ``"heat"`` or ``"exact"``, both the sources and the points are snapped to
    their nearest surface points and distances are measured on the surface (see
    :mod:`kptool.geodesic.mesh` for the interpolation inside faces). Without a
    mesh, or with ``method="graph"`` (the KeypointNet benchmark's 20-NN graph),
    they are measured on the cloud, with each source snapped to its nearest point.

    Args:
        points: ``(N, 3)`` sampled points.
        sources: ``(S, 3)`` float positions (keypoints) or ``(S,)`` int indices into ``points``.
        vertices, faces: the shape's mesh, in the same frame as ``points``, or None.
        method: ``"heat"``, ``"exact"`` (mesh only) or ``"graph"`` (cloud only).
        k: neighbours of the k-NN graph for cloud geodesics.

    Returns:
        ``(S, N)`` distances, ``inf`` where unreachable (numpy float64, or a tensor like ``points``).
    """
    if method not in METHODS:
        raise KptoolError(f"unknown geodesic method {method!r}: expected one of {', '.join(METHODS)}")
    has_mesh = vertices is not None and faces is not None and len(faces) > 0
    if not has_mesh or method == "graph":
        if method == "exact":
            raise KptoolError("exact geodesics need a mesh; this shape is a bare point cloud (use heat or graph)")
        return cloud_geodesics(points, sources, method=method, k=k)
    p = check_points(to_numpy(points), "points")
    src = to_numpy(sources)
    if np.issubdtype(src.dtype, np.integer):
        src = p[src]
    v, f = to_numpy(vertices), to_numpy(faces)
    targets = snap_to_surface(v, f, p)
    return like(mesh_geodesics(v, f, snap_to_surface(v, f, src), targets, method=method), points)
