"""Intrinsic triangulations: a mesh's surface described by edge lengths alone, re-triangulated.

The heat method needs well-shaped triangles, and real meshes (decimated scans,
CAD exports) have skinny ones and a wide spread of edge lengths. An intrinsic
triangulation keeps the surface, its metric and every original vertex, but may
connect the vertices by other straight paths *on* the surface (edge flips) and add
vertices on it (refinement), as in Sharp, Soliman & Crane, "Navigating Intrinsic
Triangulations" (2019). Nothing here needs vertex positions after the first
lengths are measured, so no inserted vertex is ever placed back in 3-D.

Layout: ``faces (F, 3)``; halfedge ``3f + i`` runs from corner ``i`` to ``i + 1`` of
face ``f``, ``length[3f + i]`` is its length and ``twin[3f + i]`` the opposite
halfedge (-1 on a boundary, or where the mesh is non-manifold or misoriented: such
edges are never flipped or crossed).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit
from scipy.sparse.csgraph import connected_components

from kptool.errors import KptoolError

# Refinement defaults: the minimum angle of Shewchuk's Triangle (its -q default, within
# Ruppert's termination guarantee), and triangles no wider than the input's typical
# one, so that the heat method's one time step suits the whole surface.
MIN_ANGLE_DEG = 20.0
MAX_CIRCUMRADIUS = 0.75   # in mean edge lengths of the input mesh (equilateral: 0.58)
SMALL_CONE_DEG = 90.0     # fans with less total angle are not refined for their angles
MIN_RADIUS = 0.05         # no refinement for angles below this circumradius (in mean edges)
# Added vertices, as a fraction of the input's: the cost of the heat method grows a
# little faster than the vertex count (2x the time per source at +50%), and the largest
# triangles, refined first, give most of the gain.
MAX_NEW_VERTICES = 0.5


def halfedge_twins(faces: np.ndarray) -> np.ndarray:
    """``(3F,)`` twin of halfedge ``3f + i``, -1 when it has none.

    Only an edge with exactly two faces, oriented consistently, gets twins: boundary,
    non-manifold and misoriented edges are left alone (never flipped).
    """
    tail, head = faces.reshape(-1), np.roll(faces, -1, axis=1).reshape(-1)
    key = np.minimum(tail, head) * (int(faces.max()) + 1) + np.maximum(tail, head)
    order = np.argsort(key, kind="stable")
    k = key[order]
    twin = np.full(len(key), -1, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    counts = np.diff(np.r_[starts, len(k)])
    pair = starts[counts == 2]
    a, b = order[pair], order[pair + 1]
    ok = tail[a] == head[b]
    twin[a[ok]], twin[b[ok]] = b[ok], a[ok]
    return twin


@njit(cache=True, error_model="numpy")
def _area(a, b, c):  # pragma: no cover - compiled
    s = 0.5 * (a + b + c)
    return np.sqrt(max(s * (s - a) * (s - b) * (s - c), 0.0))


@njit(cache=True, error_model="numpy")
def _flip_stack(faces, length, twin, stack, top, queued, max_flips):  # pragma: no cover - compiled
    """Lawson flips: pop halfedges from ``stack[:top]`` and flip each non-Delaunay edge,
    queueing the four edges around it. Returns the number of flips."""
    flips = 0
    while top > 0 and flips < max_flips:
        top -= 1
        h = stack[top]
        queued[h] = False
        t = twin[h]
        if t < 0:
            continue
        queued[t] = False
        fh, ih = h // 3, h % 3
        ft, it = t // 3, t % 3
        h1, h2 = 3 * fh + (ih + 1) % 3, 3 * fh + (ih + 2) % 3
        t1, t2 = 3 * ft + (it + 1) % 3, 3 * ft + (it + 2) % 3
        # Sum of the cotangents of the two angles facing the edge, from lengths alone.
        cot = 0.0
        for a, b, c in ((length[h], length[h1], length[h2]), (length[t], length[t1], length[t2])):
            area = _area(a, b, c)
            if area <= 0.0:
                cot = 1.0   # a degenerate neighbour: leave the edge alone
                break
            cot += (b * b + c * c - a * a) / (4.0 * area)
        if cot >= -1e-12:
            continue
        i, j = faces[fh, ih], faces[fh, (ih + 1) % 3]
        k, l = faces[fh, (ih + 2) % 3], faces[ft, (it + 2) % 3]
        if k == l:
            continue
        lij, ljk, lki, lil, llj = length[h], length[h1], length[h2], length[t1], length[t2]
        # Unfold the two triangles around vertex i: the new edge k-l spans both angles there.
        ca = min(1.0, max(-1.0, (lij * lij + lki * lki - ljk * ljk) / (2.0 * lij * lki)))
        cb = min(1.0, max(-1.0, (lij * lij + lil * lil - llj * llj) / (2.0 * lij * lil)))
        angle = np.arccos(ca) + np.arccos(cb)
        # Flippable only if the quad is strictly convex at i and j, else a new triangle is flat.
        cc = min(1.0, max(-1.0, (lij * lij + ljk * ljk - lki * lki) / (2.0 * lij * ljk)))
        cd = min(1.0, max(-1.0, (lij * lij + llj * llj - lil * lil) / (2.0 * lij * llj)))
        if angle >= np.pi - 1e-9 or np.arccos(cc) + np.arccos(cd) >= np.pi - 1e-9:
            continue
        lkl = np.sqrt(max(lki * lki + lil * lil - 2.0 * lki * lil * np.cos(angle), 0.0))
        tw_h1, tw_h2, tw_t1, tw_t2 = twin[h1], twin[h2], twin[t1], twin[t2]
        # New faces (k, i, l) in fh and (l, j, k) in ft; slot 2 of each is the new edge.
        faces[fh, 0], faces[fh, 1], faces[fh, 2] = k, i, l
        faces[ft, 0], faces[ft, 1], faces[ft, 2] = l, j, k
        slots = (3 * fh, 3 * fh + 1, 3 * ft, 3 * ft + 1)
        lens = (lki, lil, llj, ljk)
        outer = (tw_h2, tw_t1, tw_t2, tw_h1)
        for n in range(4):
            s_, o = slots[n], outer[n]
            length[s_] = lens[n]
            twin[s_] = o
            if o >= 0:
                twin[o] = s_
                if not queued[s_] and not queued[o]:
                    stack[top] = s_
                    top += 1
                    queued[s_] = True
        length[3 * fh + 2] = lkl
        length[3 * ft + 2] = lkl
        twin[3 * fh + 2], twin[3 * ft + 2] = 3 * ft + 2, 3 * fh + 2
        flips += 1
    return flips


@njit(cache=True, error_model="numpy")
def _flip_all(faces, length, twin, max_flips):  # pragma: no cover - compiled
    n_he = twin.shape[0]
    stack = np.empty(n_he + 4 * max_flips, dtype=np.int64)
    queued = np.zeros(n_he, dtype=np.bool_)
    top = 0
    for h in range(n_he):
        if twin[h] > h:
            stack[top] = h
            top += 1
            queued[h] = True
    return _flip_stack(faces, length, twin, stack, top, queued, max_flips)


def _fans(twin: np.ndarray) -> np.ndarray:
    """``(3F,)`` fan label of each corner ``3f + i``: corners at the same vertex joined by
    crossing twin edges around it share a label."""
    h = np.flatnonzero(twin >= 0)
    # Halfedge h = 3f+i leaves corner 3f+i; its twin arrives at the same vertex, which is
    # corner (t%3 + 1) % 3 of the twin's face.
    other = 3 * (twin[h] // 3) + (twin[h] % 3 + 1) % 3
    graph = sp.coo_matrix((np.ones(len(h)), (h, other)), shape=(len(twin), len(twin)))
    return connected_components(graph, directed=False)[1]


def mollify(faces: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """``(F, 3)`` edge lengths of a mesh, all raised by the least amount that gives every face
    a margin of 1e-5 mean edge in its triangle inequalities (Sharp & Crane's robust
    Laplacian), so degenerate faces do not yield infinite cotangents."""
    length = np.linalg.norm(vertices[np.roll(faces, -1, axis=1)] - vertices[faces], axis=2)
    eps = 1e-5 * float(length.mean())
    a, b, c = length[:, 0], length[:, 1], length[:, 2]
    slack = np.minimum.reduce([b + c - a, c + a - b, a + b - c])
    return length + max(0.0, float((eps - slack).max()))


def intrinsic_delaunay(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The intrinsic Delaunay triangulation of a mesh ``(V, 3)``, ``(F, 3)``: ``(faces (F, 3), lengths (F, 3))``.

    ``lengths[f, i]`` is the length of the edge from corner ``i`` to corner ``i + 1``,
    mollified first (see :func:`mollify`).
    """
    f, length, _ = _flipped(vertices, faces)
    return f, length.reshape(-1, 3)


def _flipped(vertices: np.ndarray, faces: np.ndarray):
    """Faces, flat halfedge lengths and twins of the intrinsic Delaunay triangulation.

    The twins are those the flips kept up to date: after flipping, two different
    edges may join the same two vertices, which :func:`halfedge_twins` (matching by
    endpoints) would take for a non-manifold edge.
    """
    f = np.array(faces, dtype=np.int64)
    length = mollify(f, vertices).reshape(-1)
    twin = halfedge_twins(f)
    _flip_all(f, length, twin, 50 * len(length))
    return f, length, twin


# --- Delaunay refinement: insert circumcentres of bad triangles, located by walking on the surface. ---

@njit(cache=True, error_model="numpy")
def _third_corner(ax, ay, bx, by, lb, la):  # pragma: no cover - compiled
    """The point left of the directed segment a -> b at distance ``la`` from a and ``lb`` from b."""
    dx, dy = bx - ax, by - ay
    d = np.sqrt(dx * dx + dy * dy)
    x = (la * la - lb * lb + d * d) / (2.0 * d)
    y = np.sqrt(max(la * la - x * x, 0.0))
    ux, uy = dx / d, dy / d
    return ax + x * ux - y * uy, ay + x * uy + y * ux


@njit(cache=True, error_model="numpy")
def _circumradius_and_angle(la, lb, lc):  # pragma: no cover - compiled
    area = _area(la, lb, lc)
    if area <= 0.0:
        return np.inf, 0.0
    shortest = min(la, min(lb, lc))
    # the smallest angle faces the shortest edge: sin(angle) = shortest / (2R)
    radius = la * lb * lc / (4.0 * area)
    return radius, np.arcsin(min(1.0, shortest / (2.0 * radius)))


# _locate outcomes
_INSIDE, _BOUNDARY, _LOST = 0, 1, 2


@njit(cache=True, error_model="numpy")
def _locate(faces, length, twin, f0, max_steps):  # pragma: no cover - compiled
    """Walk from face ``f0``'s centroid towards its circumcentre, unfolding faces into f0's plane.

    Returns ``(outcome, face, exit corner, barycentric (3,), corner positions (3, 2))``:
    ``_INSIDE`` (the centre lies in ``face``), ``_BOUNDARY`` (the walk leaves the
    surface through halfedge ``3 face + exit``: a boundary, non-manifold or
    misoriented edge) or ``_LOST`` (no progress within ``max_steps``).
    """
    pos = np.zeros((3, 2))
    l0, l1, l2 = length[3 * f0], length[3 * f0 + 1], length[3 * f0 + 2]
    pos[1, 0] = l0
    pos[2, 0], pos[2, 1] = _third_corner(0.0, 0.0, l0, 0.0, l1, l2)
    # circumcentre of (0,0), (l0,0), (x2,y2)
    x2, y2 = pos[2, 0], pos[2, 1]
    qx = 0.5 * l0
    qy = (x2 * x2 + y2 * y2 - l0 * x2) / (2.0 * y2)
    sx, sy = (pos[0, 0] + pos[1, 0] + pos[2, 0]) / 3.0, (pos[0, 1] + pos[1, 1] + pos[2, 1]) / 3.0
    f, entered = f0, -1
    bary = np.zeros(3)
    for _ in range(max_steps):
        det = (pos[1, 0] - pos[0, 0]) * (pos[2, 1] - pos[0, 1]) - (pos[2, 0] - pos[0, 0]) * (pos[1, 1] - pos[0, 1])
        if not det > 0.0:      # a degenerate (or, through bad lengths, flipped) face: give up
            return _LOST, f, -1, bary, pos
        for c in range(3):
            a, b = (c + 1) % 3, (c + 2) % 3
            bary[c] = ((pos[a, 0] - qx) * (pos[b, 1] - qy) - (pos[b, 0] - qx) * (pos[a, 1] - qy)) / det
        if bary.min() >= -1e-12:
            return _INSIDE, f, -1, bary, pos
        # Leave through the edge (c -> c+1) that the segment s -> q crosses.
        exit_edge = -1
        for c in range(3):
            if c == entered or bary[(c + 2) % 3] >= 0.0:
                continue
            ax, ay = pos[c, 0], pos[c, 1]
            bx, by = pos[(c + 1) % 3, 0], pos[(c + 1) % 3, 1]
            # s + u (q - s) = a + v (b - a)
            rx, ry, ex, ey = qx - sx, qy - sy, bx - ax, by - ay
            den = rx * ey - ry * ex
            if den == 0.0:
                continue
            v = ((ax - sx) * ry - (ay - sy) * rx) / den
            if -1e-9 <= v <= 1.0 + 1e-9:
                exit_edge = c
                break
        if exit_edge < 0:
            return _LOST, f, -1, bary, pos
        t = twin[3 * f + exit_edge]
        if t < 0:
            return _BOUNDARY, f, exit_edge, bary, pos
        g, j = t // 3, t % 3
        # g's corner j is f's corner exit+1 and g's corner j+1 is f's corner exit.
        ax, ay = pos[(exit_edge + 1) % 3, 0], pos[(exit_edge + 1) % 3, 1]
        bx, by = pos[exit_edge, 0], pos[exit_edge, 1]
        cx, cy = _third_corner(ax, ay, bx, by, length[3 * g + (j + 1) % 3], length[3 * g + (j + 2) % 3])
        pos[j, 0], pos[j, 1] = ax, ay
        pos[(j + 1) % 3, 0], pos[(j + 1) % 3, 1] = bx, by
        pos[(j + 2) % 3, 0], pos[(j + 2) % 3, 1] = cx, cy
        f, entered = g, j
    return _LOST, f, -1, bary, pos


@njit(cache=True, error_model="numpy")
def _set_face(faces, length, twin, f, corners, lengths, twins):  # pragma: no cover - compiled
    """Write face ``f``'s corners, halfedge lengths and twins, and point the twins back at it."""
    for c in range(3):
        faces[f, c] = corners[c]
        length[3 * f + c] = lengths[c]
        twin[3 * f + c] = twins[c]
        if twins[c] >= 0:
            twin[twins[c]] = 3 * f + c


@njit(cache=True, error_model="numpy")
def _point_and_distances(bary, pos):  # pragma: no cover - compiled
    """The point with barycentric ``bary`` in the layout ``pos (3, 2)`` and its distances ``(3,)`` to the corners."""
    qx = bary[0] * pos[0, 0] + bary[1] * pos[1, 0] + bary[2] * pos[2, 0]
    qy = bary[0] * pos[0, 1] + bary[1] * pos[1, 1] + bary[2] * pos[2, 1]
    d = np.empty(3)
    for c in range(3):
        d[c] = np.sqrt((pos[c, 0] - qx) ** 2 + (pos[c, 1] - qy) ** 2)
    return qx, qy, d


@njit(cache=True, error_model="numpy")
def _split_face(faces, length, twin, f, d, nf, nv):  # pragma: no cover - compiled
    """Split face ``f`` at a point at distances ``d (3,)`` from its corners into three faces
    (``f``, ``nf``, ``nf + 1``) around the new vertex ``nv``. Returns the halfedges to check for Delaunay."""
    a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
    l0, l1, l2 = length[3 * f], length[3 * f + 1], length[3 * f + 2]
    t0, t1, t2 = twin[3 * f], twin[3 * f + 1], twin[3 * f + 2]
    g, k = nf, nf + 1
    # f = (a, b, new), g = (b, c, new), k = (c, a, new): halfedge 0 of each is an old edge.
    _set_face(faces, length, twin, f, (a, b, nv), (l0, d[1], d[0]), (t0, 3 * g + 2, 3 * k + 1))
    _set_face(faces, length, twin, g, (b, c, nv), (l1, d[2], d[1]), (t1, 3 * k + 2, 3 * f + 1))
    _set_face(faces, length, twin, k, (c, a, nv), (l2, d[0], d[2]), (t2, 3 * f + 2, 3 * g + 1))
    return (3 * f, 3 * g, 3 * k, -1)


@njit(cache=True, error_model="numpy")
def _split_edge(faces, length, twin, h, x, nf, nv):  # pragma: no cover - compiled
    """Split halfedge ``h`` (and its twin, if any) at distance ``x`` from its tail with the new
    vertex ``nv``: its two faces become four (``nf``, ``nf + 1`` are new), one face two on a
    boundary. Returns the halfedges to check for Delaunay."""
    f, i = h // 3, h % 3
    p, q, r = faces[f, i], faces[f, (i + 1) % 3], faces[f, (i + 2) % 3]
    edge, lqr, lrp = length[h], length[3 * f + (i + 1) % 3], length[3 * f + (i + 2) % 3]
    tqr, trp = twin[3 * f + (i + 1) % 3], twin[3 * f + (i + 2) % 3]
    y = edge - x
    # Stewart's theorem: the distance from the opposite corner to a point on the edge.
    dr = np.sqrt(max((lrp * lrp * y + lqr * lqr * x) / edge - x * y, 0.0))
    t = twin[h]
    f2 = nf
    if t < 0:
        _set_face(faces, length, twin, f, (p, nv, r), (x, dr, lrp), (-1, 3 * f2 + 2, trp))
        _set_face(faces, length, twin, f2, (nv, q, r), (y, lqr, dr), (-1, tqr, 3 * f + 1))
        return (3 * f + 2, 3 * f2 + 1, -1, -1)
    g, j = t // 3, t % 3
    s_ = faces[g, (j + 2) % 3]
    lps, lsq = length[3 * g + (j + 1) % 3], length[3 * g + (j + 2) % 3]
    tps, tsq = twin[3 * g + (j + 1) % 3], twin[3 * g + (j + 2) % 3]
    ds = np.sqrt(max((lsq * lsq * x + lps * lps * y) / edge - x * y, 0.0))
    g2 = nf + 1
    _set_face(faces, length, twin, f, (p, nv, r), (x, dr, lrp), (3 * g2, 3 * f2 + 2, trp))
    _set_face(faces, length, twin, f2, (nv, q, r), (y, lqr, dr), (3 * g, tqr, 3 * f + 1))
    _set_face(faces, length, twin, g, (q, nv, s_), (y, ds, lsq), (3 * f2, 3 * g2 + 2, tsq))
    _set_face(faces, length, twin, g2, (nv, p, s_), (x, lps, ds), (3 * f, tps, 3 * g + 1))
    return (3 * f + 2, 3 * f2 + 1, 3 * g + 2, 3 * g2 + 1)


@njit(cache=True, error_model="numpy")
def _refine(faces, length, twin, nf, nv, max_radius, min_radius, min_angle, small_cone, max_new):  # pragma: no cover
    """Delaunay refinement in rounds; returns the face and vertex counts."""
    stack = np.empty(length.shape[0] * 2, dtype=np.int64)
    queued = np.zeros(length.shape[0], dtype=np.bool_)
    capacity = faces.shape[0]
    added = 0
    for _ in range(64):
        radius = np.zeros(nf)
        for f in range(nf):
            r, angle = _circumradius_and_angle(length[3 * f], length[3 * f + 1], length[3 * f + 2])
            bad = r > max_radius
            if not bad and angle < min_angle and r > min_radius:
                # A triangle whose smallest angle sits at a sharp cone (a tip with little
                # total angle) can never be fixed: refining it only adds vertices.
                sl = min(length[3 * f], min(length[3 * f + 1], length[3 * f + 2]))
                corner = 2 if length[3 * f] == sl else (0 if length[3 * f + 1] == sl else 1)
                bad = not small_cone[faces[f, corner]]
            radius[f] = r if (bad and np.isfinite(r)) else 0.0
        order = np.argsort(-radius)
        inserted = 0
        for f in order:
            if radius[f] == 0.0 or added >= max_new or nf + 2 > capacity:
                break
            # Re-check: earlier insertions this round may have changed the face.
            r, angle = _circumradius_and_angle(length[3 * f], length[3 * f + 1], length[3 * f + 2])
            if not (r > max_radius or (angle < min_angle and r > min_radius)) or not np.isfinite(r):
                continue
            outcome, g, exit_edge, bary, pos = _locate(faces, length, twin, f, 10000)
            if outcome == _LOST:
                continue
            if outcome == _BOUNDARY:
                # The centre lies beyond the boundary: split the boundary edge at its middle
                # instead (Ruppert's rule for encroached segments).
                h = 3 * g + exit_edge
                check = _split_edge(faces, length, twin, h, 0.5 * length[h], nf, nv)
                nf += 1
            else:
                # Ruppert's rule: a centre inside the diametral circle of a boundary edge
                # would make a sliver against it; split that edge at its middle instead.
                qx, qy, d = _point_and_distances(bary, pos)
                encroached = -1
                for c in range(3):
                    if twin[3 * g + c] < 0:
                        mx = 0.5 * (pos[c, 0] + pos[(c + 1) % 3, 0])
                        my = 0.5 * (pos[c, 1] + pos[(c + 1) % 3, 1])
                        if (qx - mx) ** 2 + (qy - my) ** 2 < 0.25 * length[3 * g + c] ** 2:
                            encroached = c
                low = np.argmin(bary)
                if encroached >= 0:
                    h = 3 * g + encroached
                    check = _split_edge(faces, length, twin, h, 0.5 * length[h], nf, nv)
                    nf += 1
                elif bary[low] < 1e-6:
                    # On an edge (the centre of a right triangle lies on its hypotenuse).
                    a = (low + 1) % 3
                    h = 3 * g + a
                    x = d[a]
                    if not 1e-4 * length[h] < x < (1 - 1e-4) * length[h]:
                        continue       # on a vertex, as good as: nothing to insert
                    t = twin[h]
                    if t >= 0 and faces[g, (a + 2) % 3] == faces[t // 3, (t % 3 + 2) % 3]:
                        continue       # both faces share their third vertex too: leave that pair be
                    boundary = twin[h] < 0
                    check = _split_edge(faces, length, twin, h, x, nf, nv)
                    nf += 1 if boundary else 2
                else:
                    # Never as close as this to a corner in exact arithmetic (the
                    # circumcircle is empty); rounding can bring a walk's end there.
                    if d.min() < 1e-3 * r:
                        continue
                    check = _split_face(faces, length, twin, g, d, nf, nv)
                    nf += 2
            nv += 1
            added += 1
            inserted += 1
            top = 0
            for h in check:
                if h >= 0 and twin[h] >= 0 and not queued[h]:
                    stack[top] = h
                    top += 1
                    queued[h] = True
            _flip_stack(faces[:nf], length[:3 * nf], twin[:3 * nf], stack, top, queued, 1000000)
        if inserted == 0 or added >= max_new:
            break
    return nf, nv


def refine_budget(refine) -> float:
    """The vertex budget a ``refine`` argument means: True = :data:`MAX_NEW_VERTICES`,
    False = 0, a non-negative number = itself (a fraction of the input's vertex count)."""
    if isinstance(refine, (bool, np.bool_)):
        return MAX_NEW_VERTICES if refine else 0.0
    if not isinstance(refine, (int, float, np.integer, np.floating)) or not 0 <= refine < np.inf:
        raise KptoolError(f"refine must be True, False or a non-negative vertex budget, got {refine!r}")
    return float(refine)


def delaunay_refine(vertices: np.ndarray, faces: np.ndarray, min_angle: float = MIN_ANGLE_DEG,
                    max_radius: float = MAX_CIRCUMRADIUS, max_new: float = MAX_NEW_VERTICES):
    """Intrinsic Delaunay refinement of a mesh: ``(faces (F', 3), lengths (F', 3), num_vertices)``.

    Starting from the intrinsic Delaunay triangulation, the circumcentre of every
    triangle with an angle under ``min_angle`` degrees or a circumradius over
    ``max_radius`` mean input edge lengths is inserted as a new vertex, the widest
    triangles first (found by walking straight across the surface; a centre beyond a
    boundary, or close to one, splits that boundary edge at its middle instead, as in
    Ruppert's algorithm), and the triangulation is flipped back to Delaunay. Vertices ``0..V-1`` keep their
    indices; the new ones follow. Triangles whose smallest angle sits at a vertex
    with under 60 degrees of total angle are not refined for their angle (Sharp et
    al.'s rule; they cannot be fixed), and at most ``max_new * V`` vertices are added.
    """
    f, flat_length, twin = _flipped(vertices, faces)
    length = flat_length.reshape(-1, 3)
    num_faces, num_vertices = len(f), len(vertices)
    cap_new = int(max_new * num_vertices)
    mean_edge = float(length.mean())
    # A vertex is a sharp cone when one of its fans (faces joined through twins around
    # it; several at a non-manifold vertex) has little total angle.
    corner_angle = np.empty_like(length)
    a, b, c = length[:, 0], length[:, 1], length[:, 2]
    for corner, (opp, s1, s2) in enumerate(((b, a, c), (c, a, b), (a, b, c))):
        corner_angle[:, corner] = np.arccos(np.clip((s1 ** 2 + s2 ** 2 - opp ** 2) / (2 * s1 * s2), -1.0, 1.0))
    fan = _fans(twin)
    fan_angle = np.bincount(fan, corner_angle.reshape(-1))
    small_cone = np.zeros(num_vertices + cap_new + 1, dtype=bool)
    np.logical_or.at(small_cone, f.reshape(-1), fan_angle[fan] < np.radians(SMALL_CONE_DEG))
    cap_f = num_faces + 2 * cap_new + 2
    faces_buf = np.zeros((cap_f, 3), dtype=np.int64)
    faces_buf[:num_faces] = f
    length_buf = np.zeros(3 * cap_f)
    length_buf[:3 * num_faces] = length.reshape(-1)
    twin_buf = np.full(3 * cap_f, -1, dtype=np.int64)
    twin_buf[:3 * num_faces] = twin
    nf, nv = _refine(faces_buf, length_buf, twin_buf, num_faces, num_vertices, max_radius * mean_edge,
                     MIN_RADIUS * mean_edge, np.radians(min_angle), small_cone, cap_new)
    return faces_buf[:nf].copy(), length_buf[:3 * nf].reshape(-1, 3).copy(), int(nv)
