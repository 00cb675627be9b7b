"""Geodesic distances on a triangle mesh: the heat method (potpourri3d) or exact (pygeodesic).

Sources and targets are mesh vertices or points anywhere on the surface. The
solvers give distances from a *vertex* to every vertex; a surface point ``p`` in
face ``(a, b, c)`` with barycentric weights ``w`` is handled by linear
interpolation of those fields, on both ends::

    d(p, q) = sum_i sum_j w_p[i] w_q[j] d(v_i, u_j)

clamped below by the Euclidean distance ``|p - q|`` (a geodesic is never shorter)
and replaced by it when ``p`` and ``q`` lie on the same face (the straight segment
is then on the surface, so it is the exact answer). The interpolation is exact at
vertices; elsewhere its error is a fraction of the local edge length, largest
close to the source (measured in tests/test_geodesic_mesh.py against exact
distances on a mesh with the point inserted as a vertex).

Parts of the mesh that share no vertex with a source's part are unreachable:
their distance is ``inf`` and an :class:`UnreachableWarning` is issued. Each
connected part gets its own solver, built the first time a source lies on it.
"""

from __future__ import annotations

import numpy as np
import potpourri3d as pp3d
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from kptool.errors import KptoolError
from kptool.geodesic._common import SolverCache, check_indices, check_points, digest, like, to_numpy, warn_unreachable
from kptool.geodesic.surface import SurfacePoints, check_mesh, check_surface_points, snap_to_surface

MESH_METHODS = ("heat", "exact")
_CACHE = SolverCache()


def mesh_geodesics(vertices, faces, sources, targets=None, method: str = "heat"):
    """Geodesic distances on a triangle mesh.

    Args:
        vertices: ``(V, 3)`` float (numpy or torch, CPU or CUDA).
        faces: ``(F, 3)`` int vertex indices.
        sources: ``S`` points on the surface, as ``(S,)`` int vertex indices, a
            :class:`SurfacePoints` (face + barycentric), or ``(S, 3)`` float
            coordinates snapped to the nearest surface point.
        targets: like ``sources`` (``T`` of them); ``None`` means every vertex.
        method: ``"heat"`` (potpourri3d's heat method, robust intrinsic Laplacian;
            about 1% mean error) or ``"exact"`` (pygeodesic's exact MMP algorithm;
            needs an edge-manifold mesh and is ~100x slower per source).

    Returns:
        ``(S, T)`` distances (``(S, V)`` when ``targets`` is None), ``inf`` where
        unreachable; a tensor on ``vertices``' device when ``vertices`` is one,
        else float64 numpy.
    """
    if method not in MESH_METHODS:
        raise KptoolError(f"unknown mesh geodesic method {method!r}: expected one of {', '.join(MESH_METHODS)}")
    v, f = check_mesh(vertices, faces)
    src = _support(v, f, sources, "sources")
    tgt = _support(v, f, np.arange(len(v)) if targets is None else targets, "targets")
    solver = _CACHE.get((method, digest(v, f)), lambda: MeshSolver(v, f, method))
    dist = solver.interpolated(src, tgt)
    warn_unreachable(dist, solver.num_parts, "the mesh")
    return like(dist, vertices)


def _support(v: np.ndarray, f: np.ndarray, points, what: str):
    """``(ids (S, 3), weights (S, 3), positions (S, 3))`` of some surface points.

    A surface point is the weighted sum of its face's vertices; a vertex ``v`` is
    ``ids = (v, v, v)`` with weights ``(1, 0, 0)``.
    """
    if isinstance(points, SurfacePoints):
        sp_ = check_surface_points(points, len(f))
    else:
        arr = to_numpy(points)
        if np.issubdtype(arr.dtype, np.integer):
            idx = check_indices(arr, len(v), what)
            ids = np.repeat(idx[:, None], 3, axis=1)
            weights = np.zeros((len(idx), 3))
            weights[:, 0] = 1.0
            return ids, weights, v[idx]
        sp_ = snap_to_surface(v, f, check_points(arr, what))
    return f[sp_.face], sp_.barycentric, sp_.positions(v, f)


class MeshSolver:
    """Vertex-to-vertex geodesic distances on one mesh, one lazily built solver per connected part."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, method: str):
        self.vertices, self.method = vertices, method
        # Faces that repeat a vertex have no area and confuse both solvers.
        self.faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
        n = len(vertices)
        edges = np.concatenate([self.faces[:, [0, 1]], self.faces[:, [1, 2]], self.faces[:, [2, 0]]])
        graph = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
        self.num_parts, self.part = connected_components(graph, directed=False)
        self._solvers: dict[int, tuple[np.ndarray, object]] = {}

    def _solver(self, part: int):
        if part not in self._solvers:
            verts = np.flatnonzero(self.part == part)
            faces = self.faces[self.part[self.faces[:, 0]] == part]
            if len(faces) == 0:  # a vertex used by no face: reaches only itself
                self._solvers[part] = (verts, None)
            else:
                local = np.full(len(self.vertices), -1)
                local[verts] = np.arange(len(verts))
                self._solvers[part] = (verts, _build(self.vertices[verts], local[faces], self.method))
        return self._solvers[part]

    def from_vertex(self, vertex: int) -> np.ndarray:
        """``(V,)`` distances from one vertex, ``inf`` off its part."""
        out = np.full(len(self.vertices), np.inf)
        verts, solve = self._solver(int(self.part[vertex]))
        if solve is None:
            out[vertex] = 0.0
        else:
            out[verts] = solve(int(np.searchsorted(verts, vertex)))
        return out

    def interpolated(self, src, tgt, max_floats: float = 2e7) -> np.ndarray:
        """``(S, T)`` distances between surface points given as :func:`_support` tuples."""
        s_ids, s_w, s_pos = src
        t_ids, t_w, t_pos = tgt
        used = np.unique(s_ids)
        slot = np.searchsorted(used, s_ids)
        t_main = t_ids[np.arange(len(t_ids)), t_w.argmax(1)]
        dist = np.zeros((len(s_ids), len(t_ids)))
        via = np.full((len(s_ids), len(t_ids)), np.inf)
        to_corner = np.linalg.norm(self.vertices[s_ids] - s_pos[:, None], axis=2)
        reach = np.zeros((len(s_ids), len(t_ids)), dtype=bool)
        s_main = s_w.argmax(1)
        # Rows of vertex distances are (V,) each: go through the source vertices in chunks.
        step = max(1, int(max_floats // len(self.vertices)))
        for start in range(0, len(used), step):
            rows = np.stack([self.from_vertex(u) for u in used[start:start + step]])
            finite = np.isfinite(rows)
            at_t = np.einsum("tj,utj->ut", t_w, np.where(finite, rows, 0.0)[:, t_ids])
            reach_t = finite[:, t_main]
            for i in range(3):
                sel = (slot[:, i] >= start) & (slot[:, i] < start + step)
                k = slot[sel, i] - start
                dist[sel] += s_w[sel, i, None] * at_t[k]
                via[sel] = np.minimum(via[sel], to_corner[sel, i, None] + at_t[k])
                main = sel & (s_main == i)
                reach[main] = reach_t[slot[main, i] - start]
        euclid = np.linalg.norm(s_pos[:, None] - t_pos[None], axis=2)
        same_face = _on_face_of(s_ids, s_w, t_ids) | _on_face_of(t_ids, t_w, s_ids).T
        dist = np.where(same_face, euclid, np.maximum(np.minimum(dist, via), euclid))
        return np.where(reach | same_face, dist, np.inf)


def _on_face_of(ids: np.ndarray, weights: np.ndarray, face_ids: np.ndarray) -> np.ndarray:
    """``(A, B)``: point ``a`` lies on the face (or is the vertex) of point ``b``: all its weighted vertices are b's."""
    out = np.ones((len(ids), len(face_ids)), dtype=bool)
    for i in range(3):
        inside = (ids[:, i, None, None] == face_ids[None]).any(axis=2)
        out &= inside | (weights[:, i] == 0)[:, None]
    return out


def _build(vertices: np.ndarray, faces: np.ndarray, method: str):
    """A function ``vertex index -> (V,) distances`` on one connected mesh."""
    if method == "heat":
        solver = pp3d.MeshHeatMethodDistanceSolver(vertices, faces)
        return solver.compute_distance
    _check_manifold(faces)
    import pygeodesic.geodesic as geodesic

    alg = geodesic.PyGeodesicAlgorithmExact(vertices, faces)
    return lambda i: alg.geodesicDistances(np.array([i]), None)[0]


def _check_manifold(faces: np.ndarray) -> None:
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    if (counts > 2).any():
        raise KptoolError(f"exact geodesics need an edge-manifold mesh, but {int((counts > 2).sum())} edges "
                          f"have more than two faces: use the heat method instead")
