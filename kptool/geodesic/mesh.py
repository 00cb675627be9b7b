"""Geodesic distances on a triangle mesh: the heat method (batched, below) or exact (pygeodesic).

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
When sources and targets are all vertices, no interpolation is done (fast path).
"""

from __future__ import annotations

import cholespy
import numpy as np
import scipy.sparse as sp
import trimesh
from numba import njit
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import cdist

from kptool.errors import KptoolError
from kptool.geodesic.intrinsic import MAX_NEW_VERTICES, delaunay_refine, intrinsic_delaunay, refine_budget
from kptool.geodesic._common import SolverCache, check_indices, check_points, digest, like, to_numpy, warn_unreachable
from kptool.geodesic.surface import SurfacePoints, check_mesh, check_surface_points, snap_to_surface

MESH_METHODS = ("heat", "exact")
_CACHE = SolverCache()


def mesh_geodesics(vertices, faces, sources, targets=None, method: str = "heat", refine: bool | float = True,
                   subdivide: int = 0):
    """Geodesic distances on a triangle mesh.

    Args:
        vertices: ``(V, 3)`` float (numpy or torch, CPU or CUDA).
        faces: ``(F, 3)`` int vertex indices.
        sources: ``S`` points on the surface, as ``(S,)`` int vertex indices, a
            :class:`SurfacePoints` (face + barycentric), or ``(S, 3)`` float
            coordinates snapped to the nearest surface point.
        targets: like ``sources`` (``T`` of them); ``None`` means every vertex.
        method: ``"heat"`` (the heat method, t = (mean edge)^2, all sources solved at
            once; see ``refine``) or ``"exact"`` (pygeodesic's exact MMP algorithm; needs
            an edge-manifold mesh and is 100-200x slower per source).
        refine: heat method only: solve on the intrinsic Delaunay refinement of the
            mesh (same surface and vertices; circumcentres inserted until no angle is
            under 20 degrees and no triangle much wider than the mesh's mean edge, the
            worst triangles first) adding at most this fraction of the vertex count:
            True = 0.5 (default), False or 0 = none, the reference discretisation
            (the intrinsic Delaunay triangulation of the input, as potpourri3d's robust
            solver). Mean relative error against exact, default / unrefined: TOSCA cat
            1.8% / 1.9%, lion 1.9% / 2.7%, at 1.5-1.8x the time per source; a budget of
            3 gives cat 1.3%, lion 1.8% (docs/geodesics.md, benchmarks/geodesic.py).
        subdivide: heat method only: first midpoint-subdivide (1-to-4) the mesh this
            many times. The surface, hence every exact distance, is unchanged, while the
            heat method's discretisation error drops, at about 4x the time per source and
            memory per level.

    Returns:
        ``(S, T)`` distances (``(S, V)`` when ``targets`` is None), ``inf`` where
        unreachable; a tensor on ``vertices``' device when ``vertices`` is one,
        else float64 numpy.
    """
    if method not in MESH_METHODS:
        raise KptoolError(f"unknown mesh geodesic method {method!r}: expected one of {', '.join(MESH_METHODS)}")
    if isinstance(subdivide, bool) or not isinstance(subdivide, (int, np.integer)) or subdivide < 0:
        raise KptoolError(f"subdivide must be a non-negative number of subdivision levels, got {subdivide!r}")
    budget = refine_budget(refine)
    # Exact distances do not depend on the discretisation.
    options = (budget, int(subdivide)) if method == "heat" else (0.0, 0)
    v, f = check_mesh(vertices, faces)
    src = _support(v, f, sources, "sources")
    tgt = _support(v, f, np.arange(len(v)) if targets is None else targets, "targets")
    solver = _CACHE.get((method, options, digest(v, f)), lambda: MeshSolver(v, f, method, *options))
    if _is_vertex(src) and _is_vertex(tgt):
        # Vertices only: no interpolation, just the Euclidean lower bound (what interpolated() reduces to).
        euclid = cdist(src[2], tgt[2])
        dist = np.maximum(solver.from_vertices(src[0][:, 0])[:, tgt[0][:, 0]], euclid)
    else:
        dist = solver.interpolated(src, tgt)
    warn_unreachable(dist, solver.num_parts, "the mesh")
    return like(dist, vertices)


def _is_vertex(support) -> bool:
    ids, weights, _ = support
    return bool((weights[:, 0] == 1).all() and (ids == ids[:, :1]).all())


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

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, method: str, refine: float = MAX_NEW_VERTICES,
                 subdivide: int = 0):
        self.vertices, self.method, self.refine, self.subdivide = vertices, method, refine, subdivide
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
                self._solvers[part] = (verts, _build(self.vertices[verts], local[faces], self.method,
                                                     self.refine, self.subdivide))
        return self._solvers[part]

    def from_vertices(self, sources: np.ndarray) -> np.ndarray:
        """``(S, V)`` distances from the vertices ``sources`` ``(S,)``, ``inf`` off each one's part."""
        out = np.full((len(sources), len(self.vertices)), np.inf)
        for part in np.unique(self.part[sources]):
            rows = np.flatnonzero(self.part[sources] == part)
            verts, solve = self._solver(int(part))
            if solve is None:
                out[rows, sources[rows]] = 0.0
            else:
                out[rows[:, None], verts] = solve(np.searchsorted(verts, sources[rows]))
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
            rows = self.from_vertices(used[start:start + step])
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


def _build(vertices: np.ndarray, faces: np.ndarray, method: str, refine: float = MAX_NEW_VERTICES,
           subdivide: int = 0):
    """A function ``vertex indices (S,) -> (S, V) distances`` on one connected mesh."""
    if method == "heat":
        return HeatSolver(vertices, faces, refine=refine, subdivide=subdivide)
    _check_manifold(faces)
    import pygeodesic.geodesic as geodesic

    alg = geodesic.PyGeodesicAlgorithmExact(vertices, faces)
    return lambda idx: np.stack([alg.geodesicDistances(np.array([i]), None)[0] for i in idx])


def _check_manifold(faces: np.ndarray) -> None:
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    if (counts > 2).any():
        raise KptoolError(f"exact geodesics need an edge-manifold mesh, but {int((counts > 2).sum())} edges "
                          f"have more than two faces: use the heat method instead")


# --- The heat method (Crane et al. 2013) on an intrinsic triangulation, many sources at once. ---
#
# Each connected part is factorised once: (M + tL) for the heat flow and the pinned
# cotan Laplacian L for the Poisson step, both sparse Cholesky (cholespy's CHOLMOD,
# about twice as fast per solve as scipy's SuperLU here). Sources then go through as
# columns of one right-hand side; gradient, normalisation and divergence are one
# compiled pass over the faces for all of them.
#
# The operators live on an intrinsic triangulation of the same surface (see
# kptool.geodesic.intrinsic): by default its Delaunay refinement within a vertex
# budget, else (refine=False, the reference behaviour of potpourri3d's robust solver)
# the intrinsic Delaunay triangulation of the input vertices. The heat method's error
# grows with skinny triangles and with the spread of edge lengths (t is one global time
# step): on decimated scans and CAD meshes refinement cuts it by up to a third at the
# default budget, by up to a half with a larger one.

HEAT_T_COEF = 1.0     # t = HEAT_T_COEF * (mean edge length)^2, the heat method paper's choice
_BATCH = 16           # sources per right-hand side: CHOLMOD solves slow down per column beyond ~20 (cache)


def _gradient_coefficients(length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-face gradients of the corner hat functions, from edge lengths ``(F, 3)``.

    Returns ``coef (F, 3, 2)`` (the gradient of corner ``i``'s hat function, in a 2-D
    frame of the face) and face areas ``(F,)``; ``length[f, i]`` runs from corner ``i`` to ``i + 1``.
    """
    l01, l12, l20 = length[:, 0], length[:, 1], length[:, 2]
    x2 = (l01 ** 2 + l20 ** 2 - l12 ** 2) / (2 * l01)
    y2 = np.sqrt(np.maximum(l20 ** 2 - x2 ** 2, 0.0))
    area = 0.5 * l01 * y2
    p = np.zeros((len(length), 3, 2))
    p[:, 1, 0], p[:, 2, 0], p[:, 2, 1] = l01, x2, y2
    coef = np.empty((len(length), 3, 2))
    for i in range(3):
        e = p[:, (i + 2) % 3] - p[:, (i + 1) % 3]          # the edge facing corner i, counter-clockwise
        coef[:, i] = np.stack([-e[:, 1], e[:, 0]], axis=1) / (2 * area[:, None])
    return coef, area


def _cotan_laplacian(faces: np.ndarray, coef: np.ndarray, area: np.ndarray, num_vertices: int):
    """The cotan Laplacian ``(V, V)`` (positive semi-definite): ``L_ij = sum_f area_f grad_i . grad_j``."""
    gram = np.einsum("fik,fjk->fij", coef, coef) * area[:, None, None]
    rows = np.repeat(faces, 3, axis=1).reshape(-1)
    cols = np.tile(faces, (1, 3)).reshape(-1)
    return sp.csr_matrix((gram.reshape(-1), (rows, cols)), shape=(num_vertices, num_vertices))


@njit(cache=True, fastmath=True)
def _normalized_divergence(faces, coef, area, heat, out):  # pragma: no cover - compiled
    """``out (V, S)`` = the divergence of ``-grad u / |grad u|`` for each column ``u`` of ``heat (V, S)``
    (the heat method's unit field pointing away from the source; 0 where the heat is flat)."""
    out[:] = 0.0
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        ax, ay, bx, by = coef[f, 0, 0], coef[f, 0, 1], coef[f, 1, 0], coef[f, 1, 1]
        cx, cy, w = coef[f, 2, 0], coef[f, 2, 1], -area[f]
        ha, hb, hc = heat[a], heat[b], heat[c]
        oa, ob, oc = out[a], out[b], out[c]
        # Branch-free over the sources so that the loop vectorises: where the heat is
        # flat, gx = gy = 0 and the floor on the norm keeps the product at 0.
        for s in range(heat.shape[1]):
            gx = ax * ha[s] + bx * hb[s] + cx * hc[s]
            gy = ay * ha[s] + by * hb[s] + cy * hc[s]
            scale = w / max(np.sqrt(gx * gx + gy * gy), 1e-300)
            gx *= scale
            gy *= scale
            oa[s] += ax * gx + ay * gy
            ob[s] += bx * gx + by * gy
            oc[s] += cx * gx + cy * gy


class _Cholesky:
    """A sparse symmetric positive-definite matrix, factorised once, solving for many right-hand sides."""

    def __init__(self, a):
        a = sp.coo_matrix(a)
        self._factor = cholespy.CholeskySolverD(a.shape[0], a.row.astype(np.int32), a.col.astype(np.int32),
                                                a.data.astype(np.float64), cholespy.MatrixType.COO)

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``x`` ``(n, k)`` with ``A x = b`` for ``b`` ``(n, k)``."""
        b = np.ascontiguousarray(b, dtype=np.float64)
        x = np.empty_like(b)
        self._factor.solve(b, x)
        return x


class HeatSolver:
    """The heat method on one connected mesh, factorised once, for batches of source vertices.

    Args:
        vertices: ``(V, 3)`` float64; faces: ``(F, 3)`` int64 (one connected part, no repeated corners).
        t_coef: time step ``t = t_coef * h^2``, ``h`` the mean edge length of the
            triangulation the heat flows on.
        refine: solve on the intrinsic Delaunay refinement of the mesh
            (:func:`~kptool.geodesic.intrinsic.delaunay_refine`) adding at most this
            fraction of the vertex count (True = the default budget); 0 or False gives
            the reference discretisation, the intrinsic Delaunay triangulation of the input.
        subdivide: first midpoint-subdivide (1-to-4) the mesh this many times. Flat
            triangles split into flat triangles, so the surface and its exact geodesics
            stay the same; the original vertices keep their indices (trimesh appends the
            midpoints), as does refinement, so their distances are the first ``V`` columns.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, t_coef: float = HEAT_T_COEF,
                 refine: float = MAX_NEW_VERTICES, subdivide: int = 0):
        self.num_vertices = len(vertices)
        for _ in range(subdivide):
            vertices, faces = trimesh.remesh.subdivide(vertices, faces)
        budget = refine_budget(refine)
        if budget > 0:
            self.faces, length, n = delaunay_refine(vertices, faces, max_new=budget)
        else:
            (self.faces, length), n = intrinsic_delaunay(vertices, faces), len(vertices)
        self.num_solver_vertices = n
        self.coef, self.area = _gradient_coefficients(length)
        lap = _cotan_laplacian(self.faces, self.coef, self.area, n)
        mass = sp.diags(np.bincount(self.faces.reshape(-1), np.repeat(self.area, 3), n) / 3)
        t = t_coef * float(length.mean()) ** 2
        self._heat = _Cholesky(mass + t * lap)
        # L is singular (constants); pinning vertex 0 is exact since every divergence sums to zero.
        self._poisson = _Cholesky(lap[1:, 1:]) if n > 1 else None

    def __call__(self, sources: np.ndarray) -> np.ndarray:
        """``(S, V)`` distances from the vertices ``sources`` ``(S,)``."""
        n = self.num_solver_vertices
        out = np.empty((len(sources), self.num_vertices))
        for start in range(0, len(sources), _BATCH):
            src = np.asarray(sources[start:start + _BATCH])
            cols = np.arange(len(src))
            rhs = np.zeros((n, len(src)))
            rhs[src, cols] = 1.0
            div = np.empty_like(rhs)
            _normalized_divergence(self.faces, self.coef, self.area, self._heat.solve(rhs), div)
            phi = np.zeros((n, len(src)))
            if self._poisson is not None:
                phi[1:] = self._poisson.solve(div[1:])
            out[start:start + len(src)] = (phi - phi[src, cols]).T[:, :self.num_vertices]
        return out
