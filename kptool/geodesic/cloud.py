"""Geodesic distances on a bare point cloud: a k-NN graph with Dijkstra, or the heat method.

Both methods work on the cloud's distinct points: duplicates (common after
sampling or in scans) are merged first, so they get identical distances, count
once among a point's neighbours and never create zero-length edges (which sparse
graph code may take for missing edges).

Reachability comes from the symmetric k-NN graph (``i``-``j`` is an edge when
either is among the other's ``k`` nearest points; edge weight = Euclidean
length). ``"graph"`` runs Dijkstra on it (KeypointNet's and CorresPondenceNet's
benchmark geodesics, ``k=20``). ``"heat"`` runs potpourri3d's point-cloud heat
method on each part of that graph holding a source; parts too small for it
(fewer than 31 points) fall back to the graph. Points on other parts come back
as ``inf`` with an :class:`UnreachableWarning`, never 0.
"""

from __future__ import annotations

import numpy as np
import potpourri3d as pp3d
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from kptool.errors import KptoolError
from kptool.geodesic._common import SolverCache, check_indices, check_points, digest, like, to_numpy, warn_unreachable

CLOUD_METHODS = ("heat", "graph")
KNN = 20
# potpourri3d's point-cloud Laplacian uses 30 neighbours and needs more points than that.
_HEAT_MIN_POINTS = 31
_CACHE = SolverCache()


def knn_graph(points: np.ndarray, k: int = KNN) -> sp.csr_matrix:
    """Symmetric k-NN graph of ``(N, 3)`` distinct points: ``(N, N)`` sparse, Euclidean edge lengths."""
    n = len(points)
    k = min(k, n - 1)
    if k < 1:
        return sp.csr_matrix((n, n))
    d, j = cKDTree(points).query(points, k=k + 1)
    i = np.repeat(np.arange(n), k)
    # Column 0 is the point itself (points are distinct, so its distance 0 is unique).
    g = sp.coo_matrix((d[:, 1:].ravel(), (i, j[:, 1:].ravel())), shape=(n, n)).tocsr()
    return g.maximum(g.T)


def cloud_geodesics(points, sources, targets=None, method: str = "heat", k: int = KNN):
    """Geodesic distances on a point cloud.

    Args:
        points: ``(N, 3)`` float (numpy or torch, CPU or CUDA).
        sources: ``(S,)`` int point indices, or ``(S, 3)`` float coordinates
            snapped to the nearest point of the cloud.
        targets: ``(T,)`` int point indices; ``None`` means every point.
        method: ``"heat"`` (potpourri3d's point-cloud heat method) or
            ``"graph"`` (Dijkstra on the symmetric ``k``-NN graph).
        k: neighbours per point of the graph (both methods use it for reachability).

    Returns:
        ``(S, T)`` distances (``(S, N)`` when ``targets`` is None), ``inf`` where
        unreachable; a tensor on ``points``' device when ``points`` is one.
    """
    if method not in CLOUD_METHODS:
        raise KptoolError(f"unknown point-cloud geodesic method {method!r}: expected one of "
                          f"{', '.join(CLOUD_METHODS)}")
    if k < 1:
        raise KptoolError(f"k must be at least 1, got {k}")
    p = check_points(to_numpy(points), "point cloud")
    src = _source_indices(p, sources)
    tgt = None if targets is None else check_indices(to_numpy(targets), len(p), "targets")
    solver = _CACHE.get((method, k, digest(p)), lambda: CloudSolver(p, method, k))
    dist = solver.distances(src)
    if tgt is not None:
        dist = dist[:, tgt]
    warn_unreachable(dist, solver.num_parts, "the point cloud's k-NN graph")
    return like(dist, points)


def _source_indices(p: np.ndarray, sources) -> np.ndarray:
    s = to_numpy(sources)
    if np.issubdtype(s.dtype, np.integer):
        return check_indices(s, len(p), "sources")
    s = check_points(s, "sources")
    return cKDTree(p).query(s)[1].astype(np.int64)


class CloudSolver:
    """Distances from points of one cloud; heat solvers are built per graph part on first use."""

    def __init__(self, points: np.ndarray, method: str, k: int = KNN):
        self.method = method
        self.unique, self.inverse = np.unique(points, axis=0, return_inverse=True)
        self.inverse = self.inverse.reshape(-1)
        self.graph = knn_graph(self.unique, k)
        self.num_parts, self.part = connected_components(self.graph, directed=False)
        self._heat: dict[int, tuple[np.ndarray, object]] = {}

    def distances(self, sources: np.ndarray) -> np.ndarray:
        """``(S, N)`` distances from point indices ``sources``."""
        src = self.inverse[sources]
        out = np.full((len(src), len(self.unique)), np.inf)
        if self.method == "graph":
            out[:] = dijkstra(self.graph, directed=False, indices=src)
        else:
            for row, s in enumerate(src):
                verts, solve = self._heat_solver(int(self.part[s]))
                out[row, verts] = solve(int(np.searchsorted(verts, s)))
        return out[:, self.inverse]

    def _heat_solver(self, part: int):
        if part not in self._heat:
            verts = np.flatnonzero(self.part == part)
            if len(verts) >= _HEAT_MIN_POINTS:
                solve = pp3d.PointCloudHeatSolver(self.unique[verts]).compute_distance
            else:
                sub = self.graph[verts][:, verts]
                solve = lambda i, sub=sub: dijkstra(sub, directed=False, indices=i)  # noqa: E731
            self._heat[part] = (verts, solve)
        return self._heat[part]
