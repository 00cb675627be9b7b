"""Numba CPU kernels behind the ops (the fast path for CPU tensors).

All kernels work in float32 on C-contiguous ``(B, N, 3)`` arrays (kNN in other
dimensions: ``(B, N, D)``, :func:`knn_rows`) and are
compiled on first use (``cache=True``: once per machine, not at install time).
Work is split across clouds and blocks of queries and spread over a small
thread pool (:func:`run_parallel`).

Hot loops index 1-D slices from 0 (``xs = tp[0, s0:s1]; xs[j]``): numba must
guard an index that may be negative, and that guard keeps LLVM from vectorising
a loop over ``range(s0, s1)``; over a slice and ``range(len)`` it can (6x here).

Spatial search uses a small k-d tree built per cloud (sliding-midpoint splits,
nodes numbered breadth-first, the right child always follows the left one).
Pruning compares a box lower bound against point distances; both are computed
with the same float32 operations in the same order (no ``fastmath`` on any
distance; only the order-free maximum and minimum, :func:`_max` and :func:`_min`,
use it), and
correctly rounded arithmetic is monotonic, so a bound never exceeds the distance
it bounds and the tree search returns exactly what a brute-force scan would,
ties included (lowest index wins).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numba import njit

_F0 = np.float32(0.0)
_FINF = np.float32(np.inf)
_FM1 = np.float32(-1.0)
_QUERY_BLOCK = 64  # queries per parallel task: amortises the per-task scratch buffers


def f32(t: torch.Tensor) -> np.ndarray:
    """The kernels' view of a tensor: detached, float32, C-contiguous numpy."""
    return t.detach().to(torch.float32).contiguous().numpy()


@njit(cache=True, nogil=True)
def _build_tree(pts, n, leaf_size, perm, tp, lo, hi, start, end, child):
    """Build a k-d tree over ``pts[:n]``; return ``(num_nodes, max_depth)``.

    Fills ``perm`` (tree order -> point index), ``tp (3, n)`` (coordinates in tree order) and
    per node its bounding box ``lo/hi (3,)``, its range ``start:end`` in tree
    order and ``child`` (index of the left child, right = left + 1; -1 = leaf).
    Node arrays need ``2 * n`` rows: every split leaves both sides non-empty.
    """
    # Partition the coordinates themselves (not just ``perm``) so that every pass
    # reads memory in order.
    for i in range(n):
        perm[i] = i
        for a in range(3):
            tp[a, i] = pts[i, a]
    depth = np.zeros(2 * n, np.int64)
    start[0] = 0
    end[0] = n
    count = 1
    max_depth = 0
    i = 0
    while i < count:
        s, e = start[i], end[i]
        xs, ys, zs, ps = tp[0, s:e], tp[1, s:e], tp[2, s:e], perm[s:e]
        x0, y0, z0 = xs[0], ys[0], zs[0]
        x1, y1, z1 = x0, y0, z0
        for j in range(1, e - s):
            x0, x1 = min(x0, xs[j]), max(x1, xs[j])
            y0, y1 = min(y0, ys[j]), max(y1, ys[j])
            z0, z1 = min(z0, zs[j]), max(z1, zs[j])
        lo[i, 0], lo[i, 1], lo[i, 2] = x0, y0, z0
        hi[i, 0], hi[i, 1], hi[i, 2] = x1, y1, z1
        child[i] = -1
        if e - s > leaf_size:
            axis = 0
            for a in range(1, 3):
                if hi[i, a] - lo[i, a] > hi[i, axis] - lo[i, axis]:
                    axis = a
            mid = np.float32(0.5) * (lo[i, axis] + hi[i, axis])
            # Branch-free Lomuto partition: [s, a_) < mid <= [a_, j). Swapping two
            # ">= mid" entries is harmless, so swap unconditionally and advance a_
            # by the comparison: no mispredicted branches on random coordinates.
            key = tp[axis, s:e]
            a_ = 0
            for j in range(e - s):
                below = key[j] < mid
                ps[a_], ps[j] = ps[j], ps[a_]
                xs[a_], xs[j] = xs[j], xs[a_]
                ys[a_], ys[j] = ys[j], ys[a_]
                zs[a_], zs[j] = zs[j], zs[a_]
                a_ += np.int64(below)
            a_ += s
            # All-equal coordinates (or a box one float wide) cannot be split: keep a big leaf.
            if s < a_ < e:
                child[i] = count
                start[count], end[count] = s, a_
                start[count + 1], end[count + 1] = a_, e
                depth[count] = depth[count + 1] = depth[i] + 1
                max_depth = max(max_depth, depth[i] + 1)
                count += 2
        i += 1
    return count, max_depth


@njit(cache=True, nogil=True, inline="always")
def _box_d2(x, y, z, lo, hi, nd):
    """Squared distance from ``(x, y, z)`` to the box of node ``nd`` (0 inside)."""
    dx = _F0
    if x < lo[nd, 0]:
        dx = lo[nd, 0] - x
    elif x > hi[nd, 0]:
        dx = x - hi[nd, 0]
    dy = _F0
    if y < lo[nd, 1]:
        dy = lo[nd, 1] - y
    elif y > hi[nd, 1]:
        dy = y - hi[nd, 1]
    dz = _F0
    if z < lo[nd, 2]:
        dz = lo[nd, 2] - z
    elif z > hi[nd, 2]:
        dz = z - hi[nd, 2]
    return dx * dx + dy * dy + dz * dz


@njit(cache=True, nogil=True, fastmath={"nnan", "nsz", "reassoc"})
def _max(values):
    """``max(values)`` of a non-empty 1-D array. A maximum is exact in any order, so
    the reduction may be reordered (and vectorised); the values are never NaN."""
    m = values[0]
    for j in range(1, len(values)):
        m = max(m, values[j])
    return m


@njit(cache=True, nogil=True)
def _fps_one(pts, n, k, first, leaf_size, out):
    """Farthest point sampling of one cloud ``pts[:n]`` into ``out (k,)``.

    Exact FPS accelerated as in QuickFPS: every tree node keeps the largest
    nearest-sample distance among its points (and that point's index), so a new
    sample only visits nodes whose box is closer to it than their largest
    distance. Selected points get distance -1 so that they are never picked
    again while unselected duplicates (distance 0) remain.
    """
    perm = np.empty(n, np.int64)
    tp = np.empty((3, n), np.float32)
    lo = np.empty((2 * n, 3), np.float32)
    hi = np.empty((2 * n, 3), np.float32)
    start = np.empty(2 * n, np.int64)
    end = np.empty(2 * n, np.int64)
    child = np.empty(2 * n, np.int64)
    num_nodes, max_depth = _build_tree(pts, n, leaf_size, perm, tp, lo, hi, start, end, child)
    pos = np.empty(n, np.int64)
    for j in range(n):
        pos[perm[j]] = j
    dist = np.full(n, _FINF, np.float32)
    nmax = np.full(num_nodes, _FINF, np.float32)
    narg = np.zeros(num_nodes, np.int64)
    stack = np.empty(max_depth + 3, np.int64)
    visited = np.empty(num_nodes, np.int64)
    kk = min(k, n)
    cur = first
    for s in range(kk):
        out[s] = cur
        if s == kk - 1:
            break
        x, y, z = pts[cur, 0], pts[cur, 1], pts[cur, 2]
        pc = pos[cur]
        dist[pc] = _FM1
        stack[0] = 0
        sp = 1
        nv = 0
        while sp > 0:
            sp -= 1
            nd = stack[sp]
            # The node holding the new sample must be refreshed even when nothing
            # moves (its max is the sample itself, which is now taken).
            if not (start[nd] <= pc < end[nd]):
                if _box_d2(x, y, z, lo, hi, nd) >= nmax[nd]:
                    continue
            c = child[nd]
            if c < 0:
                s0, s1 = start[nd], end[nd]
                xs, ys, zs, ds, ps = tp[0, s0:s1], tp[1, s0:s1], tp[2, s0:s1], dist[s0:s1], perm[s0:s1]
                for j in range(s1 - s0):
                    dx = xs[j] - x
                    dy = ys[j] - y
                    dz = zs[j] - z
                    d = dx * dx + dy * dy + dz * dz
                    v = ds[j]
                    ds[j] = d if d < v else v
                bm = _max(ds)
                ba = n
                for j in range(s1 - s0):
                    ba = min(ba, ps[j]) if ds[j] == bm else ba
                nmax[nd] = bm
                narg[nd] = ba
            else:
                visited[nv] = nd
                nv += 1
                stack[sp] = c
                stack[sp + 1] = c + 1
                sp += 2
        # Reverse pre-order visits children before their parents.
        for t in range(nv - 1, -1, -1):
            nd = visited[t]
            c = child[nd]
            if nmax[c] > nmax[c + 1] or (nmax[c] == nmax[c + 1] and narg[c] < narg[c + 1]):
                nmax[nd] = nmax[c]
                narg[nd] = narg[c]
            else:
                nmax[nd] = nmax[c + 1]
                narg[nd] = narg[c + 1]
        cur = narg[0]
    for s in range(kk, k):
        out[s] = out[0]


def fps(points, lengths, k, starts, leaf_size):
    """points (B, N, 3) f32, lengths (B,), starts (B,) -> (B, k) int64 indices."""
    out = np.empty((points.shape[0], k), np.int64)
    run_parallel(_fps_range, points.shape[0], points, lengths, k, starts, leaf_size, out)
    return out


@njit(cache=True, nogil=True)
def _fps_range(points, lengths, k, starts, leaf_size, out, b0, b1):
    for b in range(b0, b1):
        _fps_one(points[b], lengths[b], k, starts[b], leaf_size, out[b])


def build_trees(points, lengths, leaf_size):
    """One k-d tree per cloud of ``points (B, N, 3)``: the arrays of :func:`_build_tree`
    with a leading batch axis, plus ``max_depth (B,)``."""
    B, N = points.shape[0], points.shape[1]
    trees = (
        np.empty((B, N), np.int64),  # perm
        np.empty((B, 3, N), np.float32),  # tp
        np.empty((B, 2 * N, 3), np.float32),  # lo
        np.empty((B, 2 * N, 3), np.float32),  # hi
        np.empty((B, 2 * N), np.int64),  # start
        np.empty((B, 2 * N), np.int64),  # end
        np.empty((B, 2 * N), np.int64),  # child
        np.empty(B, np.int64),  # max_depth
    )
    run_parallel(_build_range, B, points, lengths, leaf_size, *trees)
    return trees


@njit(cache=True, nogil=True)
def _build_range(points, lengths, leaf_size, perm, tp, lo, hi, start, end, child, max_depth, b0, b1):
    for b in range(b0, b1):
        _, max_depth[b] = _build_tree(points[b], lengths[b], leaf_size, perm[b], tp[b], lo[b], hi[b],
                                      start[b], end[b], child[b])


@njit(cache=True, nogil=True, inline="always")
def _insert(vals, idx, size, v, j):
    """Insert ``(v, j)`` into the first ``size`` entries of ``vals/idx``, kept sorted by
    (value, index); the last entry drops out. Callers check first that it belongs there."""
    m = size - 1
    while m > 0 and v < vals[m - 1]:
        vals[m] = vals[m - 1]
        idx[m] = idx[m - 1]
        m -= 1
    while m > 0 and v == vals[m - 1] and j < idx[m - 1]:  # exact ties: by index
        vals[m] = vals[m - 1]
        idx[m] = idx[m - 1]
        m -= 1
    vals[m] = v
    idx[m] = j


@njit(cache=True, nogil=True, inline="always")
def _knn_one(x, y, z, k, perm, tp, lo, hi, start, end, child, stack, stack_lb, bd, bi):
    """Improve the ``k`` best (distance, index) pairs ``bd/bi (k,)``, kept sorted, with
    the points of one tree. Start them at (inf, N), or at known points as seeds."""
    stack[0] = 0
    stack_lb[0] = _F0
    sp = 1
    while sp > 0:
        sp -= 1
        nd = stack[sp]
        # ">" not ">=": a point at exactly the k-th distance may still win on index.
        if stack_lb[sp] > bd[k - 1]:
            continue
        c = child[nd]
        if c < 0:
            worst = bd[k - 1]
            s0, s1 = start[nd], end[nd]
            xs, ys, zs, ps = tp[0, s0:s1], tp[1, s0:s1], tp[2, s0:s1], perm[s0:s1]
            for j in range(s1 - s0):
                dx = xs[j] - x
                dy = ys[j] - y
                dz = zs[j] - z
                d = dx * dx + dy * dy + dz * dz
                if d > worst:
                    continue
                pj = ps[j]
                if d == worst and pj >= bi[k - 1]:  # ">=": a seed is not taken twice
                    continue
                # _insert written out: the call, even inlined, costs 3% of a 3-D kNN here
                m = k - 1
                while m > 0 and d < bd[m - 1]:
                    bd[m] = bd[m - 1]
                    bi[m] = bi[m - 1]
                    m -= 1
                while m > 0 and d == bd[m - 1] and pj < bi[m - 1]:  # exact ties: by index
                    bd[m] = bd[m - 1]
                    bi[m] = bi[m - 1]
                    m -= 1
                bd[m] = d
                bi[m] = pj
                worst = bd[k - 1]
        else:
            l0 = _box_d2(x, y, z, lo, hi, c)
            l1 = _box_d2(x, y, z, lo, hi, c + 1)
            # Push the farther child first so that the nearer one is searched first.
            if l0 <= l1:
                stack[sp], stack_lb[sp] = c + 1, l1
                stack[sp + 1], stack_lb[sp + 1] = c, l0
            else:
                stack[sp], stack_lb[sp] = c, l0
                stack[sp + 1], stack_lb[sp + 1] = c + 1, l1
            sp += 2


def knn(query, query_lengths, points, points_lengths, k, leaf_size):
    """query (B, M, 3), points (B, N, 3) f32 -> (d2 (B, M, k) f32, idx (B, M, k) int64).

    Neighbours are sorted by (distance, index). A cloud with fewer than ``k``
    points repeats its nearest neighbour in the missing slots; padded query
    rows are left at index 0, distance 0.
    """
    B, M = query.shape[0], query.shape[1]
    trees = build_trees(points, points_lengths, leaf_size)
    d_out = np.zeros((B, M, k), np.float32)
    i_out = np.zeros((B, M, k), np.int64)
    tasks = B * -(-M // _QUERY_BLOCK)
    run_parallel(_knn_range, tasks, query, query_lengths, points_lengths, k, *trees, d_out, i_out)
    return d_out, i_out


@njit(cache=True, nogil=True)
def _knn_range(query, query_lengths, points_lengths, k, perm, tp, lo, hi, start, end, child, max_depth,
               d_out, i_out, t0, t1):
    M = query.shape[1]
    blocks = (M + _QUERY_BLOCK - 1) // _QUERY_BLOCK
    stack = np.empty(max_depth.max() + 3, np.int64)
    stack_lb = np.empty(max_depth.max() + 3, np.float32)
    bd = np.empty(k, np.float32)
    bi = np.empty(k, np.int64)
    for t in range(t0, t1):
        b = t // blocks
        q0 = (t % blocks) * _QUERY_BLOCK
        q1 = min(q0 + _QUERY_BLOCK, query_lengths[b])
        kk = min(k, points_lengths[b])
        for i in range(q0, q1):
            bd[:] = _FINF
            bi[:] = perm.shape[1]
            _knn_one(query[b, i, 0], query[b, i, 1], query[b, i, 2], kk, perm[b], tp[b], lo[b], hi[b],
                     start[b], end[b], child[b], stack, stack_lb, bd, bi)
            for j in range(k):
                s = j if j < kk else 0
                d_out[b, i, j] = bd[s]
                i_out[b, i, j] = bi[s]


@njit(cache=True, nogil=True, inline="always")
def _sq_dist(a, b):
    """Squared distance of two 1-D float32 arrays, summed in four interleaved partial sums
    (a fixed order: the same answer on every machine, and no single chain of dependent adds)."""
    s0 = s1 = s2 = s3 = _F0
    D = len(a)
    m = D - D % 4
    for c in range(0, m, 4):
        t0 = a[c] - b[c]
        t1 = a[c + 1] - b[c + 1]
        t2 = a[c + 2] - b[c + 2]
        t3 = a[c + 3] - b[c + 3]
        s0 += t0 * t0
        s1 += t1 * t1
        s2 += t2 * t2
        s3 += t3 * t3
    for c in range(m, D):
        t0 = a[c] - b[c]
        s0 += t0 * t0
    return (s0 + s1) + (s2 + s3)


def knn_rows(dots, norms, delta, query, points, n, k, d_out, i_out):
    """Exact k nearest ``points[:n]`` of each row of ``query`` from a rough distance table.

    ``dots (R, n)`` holds ``q.p_j`` (a BLAS product: fast, but rounded differently from
    the true distances) and ``norms (n,)`` ``|p_j|^2``, so ``|p_j|^2 - 2 q.p_j`` is the
    squared distance up to the row's constant ``|q|^2``; ``delta (R,)`` bounds its error
    per row. Every true neighbour lies within ``2 delta`` of the k-th smallest rough value,
    so only the points under that limit get their distance computed exactly (float32,
    :func:`_sq_dist`); the ``k`` best by (distance, index) go to ``d_out/i_out (R, k)``.
    With ``n < k`` the missing slots repeat the nearest.
    """
    run_parallel(_knn_rows_range, dots.shape[0], dots, norms, delta, query, points, n, k, d_out, i_out)


_ROW_GROUPS = 16  # a distance row of n entries is split into n / 16 strided groups of 16


_BOUND_BUCKETS = 32


@njit(cache=True, nogil=True, fastmath={"nnan", "nsz", "reassoc"})
def _min(values):
    """``min(values)`` of a non-empty 1-D array (order-free, so vectorised; see :func:`_max`)."""
    m = values[0]
    for j in range(1, len(values)):
        m = min(m, values[j])
    return m


@njit(cache=True, nogil=True, inline="always")
def _upper_bound_of_kth(values, kk, counts):
    """A value ``>=`` the ``kk``-th smallest of ``values`` (finite), found without sorting: a
    histogram of ``len(counts)`` buckets, then the largest value in the buckets up to the one
    holding the kk-th. Branch-light, unlike a selection."""
    lo, hi = _min(values), _max(values)
    if not hi - lo < _FINF:
        return _FINF
    if hi == lo:
        return hi
    nb = len(counts)
    scale = np.float32(nb) / (hi - lo)
    counts[:] = 0
    for g in range(len(values)):
        counts[min(np.int64((values[g] - lo) * scale), nb - 1)] += 1
    last, total = 0, counts[0]
    while total < kk:
        last += 1
        total += counts[last]
    bound = lo
    for g in range(len(values)):
        if min(np.int64((values[g] - lo) * scale), nb - 1) <= last:
            bound = max(bound, values[g])
    return bound


@njit(cache=True, nogil=True, inline="always")
def _select(a, m, kth):
    """The ``kth`` smallest (0-based) of ``a[:m]``, reordering ``a`` (Hoare's quickselect)."""
    lo, hi = 0, m - 1
    while lo < hi:
        x = a[(lo + hi) >> 1]
        i, j = lo, hi
        while i <= j:
            while a[i] < x:
                i += 1
            while a[j] > x:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if kth <= j:
            hi = j
        elif kth >= i:
            lo = i
        else:
            break
    return a[kth]


@njit(cache=True, nogil=True)
def _knn_rows_range(dots, norms, delta, query, points, n, k, d_out, i_out, r0, r1):
    kk = min(k, n)
    # Group g holds the entries j = g + t * G (t < 16) of a row: strided groups let the
    # rough values and the groups' minima be computed in one vectorised sweep.
    G = (n + _ROW_GROUPS - 1) // _ROW_GROUPS
    rough = np.empty(n, np.float32)
    group_min = np.empty(G, np.float32)
    counts = np.empty(_BOUND_BUCKETS, np.int64)
    scratch = np.empty(n, np.float32)
    cand_v = np.empty(n, np.float32)
    cand_i = np.empty(n, np.int64)
    bd = np.empty(kk, np.float32)
    bi = np.empty(kk, np.int64)
    for r in range(r0, r1):
        row = dots[r, :n]
        for j in range(n):
            rough[j] = norms[j] - np.float32(2.0) * row[j]
        group_min[:] = rough[:G]
        for t in range(1, _ROW_GROUPS):
            part = rough[t * G:min(n, (t + 1) * G)]
            for g in range(len(part)):
                group_min[g] = min(group_min[g], part[g])
        slack = np.float32(2.0) * delta[r]
        # Any kk group minima are kk distinct entries, so a bound on the kk-th smallest group
        # minimum bounds the row's kk-th smallest entry: only groups whose minimum is under it
        # (plus slack) can hold a candidate, and they hold the kk smallest entries.
        bound = _upper_bound_of_kth(group_min, kk, counts) + slack if G >= kk else _FINF
        nc = 0
        for g in range(G):
            if group_min[g] > bound:
                continue
            for j in range(g, n, G):
                if rough[j] <= bound:
                    cand_v[nc] = rough[j]
                    cand_i[nc] = j
                    nc += 1
        # Every true neighbour is within 2 delta of the kk-th smallest rough value; with
        # few candidates it is cheaper to rank them all than to find that value.
        limit = _FINF
        if nc > 4 * kk:
            scratch[:nc] = cand_v[:nc]
            limit = _select(scratch, nc, kk - 1) + slack
        # Exact distances of those candidates, best kk by (distance, index).
        bd[:] = _FINF
        bi[:] = n
        q = query[r]
        for c in range(nc):
            if not cand_v[c] <= limit:
                continue
            j = cand_i[c]
            d = _sq_dist(q, points[j])
            if d > bd[kk - 1] or (d == bd[kk - 1] and j >= bi[kk - 1]):
                continue
            _insert(bd, bi, kk, d, j)
        for j in range(k):
            s = j if j < kk else 0
            d_out[r, j] = bd[s]
            i_out[r, j] = bi[s]


def nearest(query_trees, query_lengths, points, point_trees):
    """Nearest point of each query -> (d2 (B, M) f32, idx (B, M) int64).

    Takes the :func:`build_trees` of both clouds and the ``points (B, N, 3)``.
    Same answer as ``knn(..., k=1)`` (ties: lowest index), faster for whole
    clouds of queries: the queries are visited in the order of their own k-d
    tree and each search is seeded with the previous (nearby) query's answer,
    whose distance is already a tight bound. Padded query rows are left at
    index 0, distance 0.
    """
    qperm, qtp = query_trees[:2]
    B, M = qperm.shape
    d_out = np.zeros((B, M), np.float32)
    i_out = np.zeros((B, M), np.int64)
    tasks = B * -(-M // _QUERY_BLOCK)
    run_parallel(_nearest_range, tasks, qperm, qtp, query_lengths, points, *point_trees, d_out, i_out)
    return d_out, i_out


@njit(cache=True, nogil=True)
def _nearest_range(qperm, qtp, query_lengths, points, perm, tp, lo, hi, start, end, child, max_depth,
                   d_out, i_out, t0, t1):
    M = qperm.shape[1]
    blocks = (M + _QUERY_BLOCK - 1) // _QUERY_BLOCK
    stack = np.empty(max_depth.max() + 3, np.int64)
    stack_lb = np.empty(max_depth.max() + 3, np.float32)
    bd = np.empty(1, np.float32)
    bi = np.empty(1, np.int64)
    for t in range(t0, t1):
        b = t // blocks
        q0 = (t % blocks) * _QUERY_BLOCK
        q1 = min(q0 + _QUERY_BLOCK, query_lengths[b])
        bi[0] = 0
        for i in range(q0, q1):
            x, y, z = qtp[b, 0, i], qtp[b, 1, i], qtp[b, 2, i]
            dx = points[b, bi[0], 0] - x
            dy = points[b, bi[0], 1] - y
            dz = points[b, bi[0], 2] - z
            bd[0] = dx * dx + dy * dy + dz * dz
            _knn_one(x, y, z, 1, perm[b], tp[b], lo[b], hi[b], start[b], end[b], child[b], stack, stack_lb, bd, bi)
            d_out[b, qperm[b, i]] = bd[0]
            i_out[b, qperm[b, i]] = bi[0]


def ball_query(query, query_lengths, points, points_lengths, r2, max_samples, empty_nearest):
    """PointNet++ ball query: query (B, M, 3), points (B, N, 3) f32 -> idx (B, M, S) int64.

    A point is a neighbour when its squared distance is strictly below ``r2``.
    The first ``S`` neighbours in index order are kept (a scan in index order
    that stops once ``S`` are found, as the reference CUDA kernel does), missing
    slots repeat the first neighbour, and a query with no neighbour gets its
    nearest point (``empty_nearest``) or index 0 (PointNet++).
    """
    B, M = query.shape[0], query.shape[1]
    out = np.zeros((B, M, max_samples), np.int64)
    tasks = B * -(-M // _QUERY_BLOCK)
    run_parallel(_ball_query_range, tasks, query, query_lengths, points, points_lengths, r2, empty_nearest, out)
    return out


@njit(cache=True, nogil=True)
def _ball_query_range(query, query_lengths, points, points_lengths, r2, empty_nearest, out, t0, t1):
    M = query.shape[1]
    S = out.shape[2]
    blocks = (M + _QUERY_BLOCK - 1) // _QUERY_BLOCK
    for t in range(t0, t1):
        b = t // blocks
        q0 = (t % blocks) * _QUERY_BLOCK
        q1 = min(q0 + _QUERY_BLOCK, query_lengths[b])
        n = points_lengths[b]
        for i in range(q0, q1):
            x, y, z = query[b, i, 0], query[b, i, 1], query[b, i, 2]
            cnt = 0
            best = _FINF
            nearest = 0
            for j in range(n):
                dx = points[b, j, 0] - x
                dy = points[b, j, 1] - y
                dz = points[b, j, 2] - z
                d = dx * dx + dy * dy + dz * dz
                if d < r2:
                    out[b, i, cnt] = j
                    cnt += 1
                    if cnt == S:
                        break
                if d < best:
                    best = d
                    nearest = j
            if cnt == 0:
                fill = nearest if empty_nearest else 0
            else:
                fill = out[b, i, 0]
            for s in range(cnt, S):
                out[b, i, s] = fill


# ------------------------------------------------------------------ threads

_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def run_parallel(kernel, n_tasks: int, *args) -> None:
    """Run ``kernel(*args, t0, t1)`` over task ranges covering ``[0, n_tasks)``.

    The kernels are ``nogil`` numba functions, so plain Python threads run them in
    parallel. Unlike numba's own ``parallel=True`` (an OpenMP pool that spins
    while idle and fights torch's OpenMP pool for the cores) idle threads here
    sleep. Uses ``torch.get_num_threads()`` threads, so ``torch.set_num_threads``
    governs kptool too; tasks are dealt out in several chunks per thread so that a
    thread slowed by other load does not hold the others up.
    """
    threads = min(torch.get_num_threads(), n_tasks)
    if threads <= 1:
        kernel(*args, 0, n_tasks)
        return
    bounds = np.linspace(0, n_tasks, min(n_tasks, 4 * threads) + 1).astype(np.int64)
    pool = _get_pool(threads)
    futures = [pool.submit(kernel, *args, int(t0), int(t1)) for t0, t1 in zip(bounds[:-1], bounds[1:]) if t1 > t0]
    for future in futures:
        future.result()


def _get_pool(threads: int) -> ThreadPoolExecutor:
    global _pool, _pool_pid
    with _pool_lock:
        # A forked child (e.g. a DataLoader worker) inherits the pool object but
        # not its threads: work submitted there would never run.
        if _pool is None or _pool._max_workers != threads or _pool_pid != os.getpid():
            if _pool is not None and _pool_pid == os.getpid():
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kptool-ops")
            _pool_pid = os.getpid()
        return _pool
