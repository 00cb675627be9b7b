"""Mesh geodesics against known answers: Euclidean on a plane, great circles, exact (pygeodesic)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import trimesh

from kptool.errors import KptoolError
from kptool.geodesic import SurfacePoints, UnreachableWarning, mesh_geodesics, snap_to_surface
from conftest import requires_cuda


def grid(n: int = 15, size: float = 2.0):
    """A flat ``n x n`` vertex grid in the z = 0 plane, two triangles per cell, alternating diagonals."""
    x, y = np.meshgrid(np.linspace(0, size, n), np.linspace(0, size, n), indexing="ij")
    v = np.stack([x.ravel(), y.ravel(), np.zeros(n * n)], axis=1)
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, (i + 1) * n + j, (i + 1) * n + j + 1, i * n + j + 1
            faces += [[a, b, c], [a, c, d]] if (i + j) % 2 else [[a, b, d], [b, c, d]]
    return v, np.array(faces)


def sphere(subdivisions: int = 3):
    m = trimesh.creation.icosphere(subdivisions)
    return np.asarray(m.vertices), np.asarray(m.faces)


def great_circle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.arccos(np.clip(a @ b.T, -1, 1))


def relative_error(d: np.ndarray, ref: np.ndarray) -> float:
    keep = ref > 1e-6
    return float(np.mean(np.abs(d[keep] - ref[keep]) / ref[keep]))


def bumpy(seed: int = 0):
    """An irregular closed surface: an icosphere with random radial bumps."""
    v, f = sphere(3)
    r = 1 + 0.15 * np.random.default_rng(seed).standard_normal(len(v)) * 0.3
    return v * r[:, None], f


def test_plane_exact_is_euclidean_and_heat_is_close():
    v, f = grid()
    src = np.array([0, 7 * 15 + 7, 15 * 15 - 1])
    ref = np.linalg.norm(v[src][:, None] - v[None], axis=2)
    np.testing.assert_allclose(mesh_geodesics(v, f, src, method="exact"), ref, atol=1e-9)
    heat = mesh_geodesics(v, f, src, method="heat")
    assert relative_error(heat, ref) < 0.03
    assert np.abs(heat[np.arange(3), src]).max() < 1e-9


def test_sphere_great_circle():
    v, f = sphere(3)
    src = np.array([0, 11, 200])
    ref = great_circle(v[src], v)
    assert relative_error(mesh_geodesics(v, f, src, method="exact"), ref) < 0.01
    assert relative_error(mesh_geodesics(v, f, src, method="heat"), ref) < 0.02


def test_heat_against_exact_on_irregular_mesh():
    v, f = bumpy()
    src = np.random.default_rng(1).choice(len(v), 5, replace=False)
    exact = mesh_geodesics(v, f, src, method="exact")
    heat = mesh_geodesics(v, f, src, method="heat")
    assert relative_error(heat, exact) < 0.03
    # Exact distances are symmetric and satisfy the triangle inequality through any vertex.
    np.testing.assert_allclose(exact[:, src], exact[:, src].T, atol=1e-9)
    assert (exact[:, None, :] <= exact[:, src][:, :, None] + exact[None] + 1e-9).all()


def test_targets_select_columns():
    v, f = bumpy()
    src, tgt = np.array([3, 40]), np.array([5, 0, 99, 5])
    for method in ("heat", "exact"):
        np.testing.assert_allclose(mesh_geodesics(v, f, src, tgt, method=method),
                                   mesh_geodesics(v, f, src, method=method)[:, tgt])


def test_single_triangle_exact():
    v = np.array([[0.0, 0, 0], [3, 0, 0], [0, 4, 0]])
    d = mesh_geodesics(v, np.array([[0, 1, 2]]), np.array([0, 1, 2]), method="exact")
    np.testing.assert_allclose(d, [[0, 3, 4], [3, 0, 5], [4, 5, 0]], atol=1e-12)


@pytest.mark.parametrize("method", ["heat", "exact"])
def test_two_components_are_inf_with_warning(method):
    v, f = sphere(2)
    v2 = np.vstack([v, v + [5.0, 0, 0], [[9.0, 9, 9]]])     # second sphere and an unused vertex
    f2 = np.vstack([f, f + len(v)])
    with pytest.warns(UnreachableWarning, match="3 connected parts"):
        d = mesh_geodesics(v2, f2, np.array([0, len(v) + 4]), method=method)
    alone = mesh_geodesics(v, f, np.array([0, 4]), method=method)
    np.testing.assert_allclose(d[0, :len(v)], alone[0])
    np.testing.assert_allclose(d[1, len(v):2 * len(v)], alone[1])
    assert np.isinf(d[0, len(v):]).all() and np.isinf(d[1, :len(v)]).all() and np.isinf(d[1, -1])
    # The unused vertex reaches only itself.
    with pytest.warns(UnreachableWarning):
        lone = mesh_geodesics(v2, f2, np.array([len(v2) - 1]), method=method)
    assert lone[0, -1] == 0 and np.isinf(lone[0, :-1]).all()


def test_connected_mesh_gives_no_warning():
    v, f = sphere(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(mesh_geodesics(v, f, np.array([0]))).all()


def insert_point(v, f, face, bary):
    """The mesh with a surface point added as a new vertex (face split in three): the slow reference."""
    p = bary @ v[f[face]]
    a, b, c = f[face]
    n = len(v)
    faces = np.vstack([np.delete(f, face, axis=0), [[a, b, n], [b, c, n], [c, a, n]]])
    return np.vstack([v, p]), faces


def test_surface_point_sources_against_insertion():
    v, f = bumpy()
    rng = np.random.default_rng(2)
    face = rng.choice(len(f), 6, replace=False)
    bary = rng.dirichlet([2.0, 2.0, 2.0], size=6)
    d = mesh_geodesics(v, f, SurfacePoints(face, bary), method="exact")
    heat = mesh_geodesics(v, f, SurfacePoints(face, bary), method="heat")
    edge = np.linalg.norm(v[f[:, 0]] - v[f[:, 1]], axis=1).mean()
    refs = []
    for i in range(6):
        vi, fi = insert_point(v, f, face[i], bary[i])
        refs.append(mesh_geodesics(vi, fi, np.array([len(v)]), method="exact")[0, :len(v)])
        # Vertices of the source's own face are at their straight-line distance.
        np.testing.assert_allclose(d[i, f[face[i]]], np.linalg.norm(v[f[face[i]]] - vi[-1], axis=1))
    refs = np.array(refs)
    errors = np.abs(d - refs)
    # Measured: max 0.33 edge (at the cut locus, far from the source), mean 0.026 edge, 0.3% relative.
    assert errors.max() < 0.5 * edge and errors.mean() < 0.05 * edge
    assert relative_error(d, refs) < 0.006
    assert relative_error(heat, refs) < 0.025                      # measured 1.5%


def test_surface_point_at_a_vertex_equals_vertex_source():
    v, f = bumpy()
    face = np.array([10, 20])
    corner = np.array([0, 2])
    bary = np.eye(3)[corner]
    d = mesh_geodesics(v, f, SurfacePoints(face, bary), method="exact")
    np.testing.assert_allclose(d, mesh_geodesics(v, f, f[face, corner], method="exact"), atol=1e-12)
    # Heat distances break the triangle inequality a little, so the paths via the other corners
    # (an upper bound for exact distances) can shave them.
    d = mesh_geodesics(v, f, SurfacePoints(face, bary), method="heat")
    assert relative_error(d, mesh_geodesics(v, f, f[face, corner], method="heat")) < 0.002


def test_surface_targets_within_and_across_faces():
    v, f = grid(9)
    rng = np.random.default_rng(3)
    src = SurfacePoints(rng.choice(len(f), 4), rng.dirichlet([1.0, 1, 1], 4))
    tgt = SurfacePoints(np.r_[src.face[:1], rng.choice(len(f), 20)], rng.dirichlet([1.0, 1, 1], 21))
    ref = np.linalg.norm(src.positions(v, f)[:, None] - tgt.positions(v, f)[None], axis=2)
    d = mesh_geodesics(v, f, src, tgt, method="exact")
    assert d[0, 0] == pytest.approx(ref[0, 0], abs=1e-12)      # same face: straight line
    edge = 2.0 / 8
    # Measured: max 0.2 edge (source and target in neighbouring faces), mean 0.04 edge.
    assert (d >= ref - 1e-12).all() and (d - ref).max() < 0.3 * edge and (d - ref).mean() < 0.06 * edge


def test_snap_to_surface_matches_brute_force():
    v, f = bumpy()
    # Add one huge face so the "large face" path is exercised.
    v = np.vstack([v, [[-3.0, -3, 2], [3, -3, 2], [0, 3, 2]]])
    f = np.vstack([f, [[len(v) - 3, len(v) - 2, len(v) - 1]]])
    q = np.random.default_rng(4).normal(size=(200, 3)) * 1.5
    got = snap_to_surface(v, f, q)
    closest, dist, _ = trimesh.proximity.closest_point_naive(trimesh.Trimesh(v, f, process=False), q)
    np.testing.assert_allclose(np.linalg.norm(got.positions(v, f) - q, axis=1), dist, atol=1e-9)
    np.testing.assert_allclose(got.positions(v, f), closest, atol=1e-6)


def test_float_sources_are_snapped():
    v, f = sphere(3)
    q = np.array([[0.0, 0, 2.0], [0.3, -0.9, 0.1]])
    d = mesh_geodesics(v, f, q, method="exact")
    snapped = snap_to_surface(v, f, q)
    np.testing.assert_allclose(d, mesh_geodesics(v, f, snapped, method="exact"))


def test_exact_refuses_non_manifold_mesh_and_heat_copes():
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]])
    f = np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]])        # edge 0-1 has three faces
    with pytest.raises(KptoolError, match="edge-manifold"):
        mesh_geodesics(v, f, np.array([2]), method="exact")
    d = mesh_geodesics(v, f, np.array([2]), method="heat")
    assert np.isfinite(d).all() and d[0, 2] == 0


@pytest.mark.parametrize("bad, match", [
    (dict(sources=np.array([99])), r"sources must lie in \[0, 4\)"),
    (dict(faces=np.array([[0, 1, 7]])), "mesh face indices"),
    (dict(vertices=np.full((4, 3), np.nan)), "NaN"),
    (dict(method="fast"), "unknown mesh geodesic method"),
    (dict(sources=SurfacePoints(np.array([0]), np.array([[0.5, 0.6, 0.2]]))), "sum to 1"),
])
def test_bad_inputs(bad, match):
    args = dict(vertices=np.eye(4, 3), faces=np.array([[0, 1, 2], [1, 2, 3]]), sources=np.array([0]), method="heat")
    args.update(bad)
    with pytest.raises(KptoolError, match=match):
        mesh_geodesics(**args)


def test_torch_in_torch_out():
    v, f = sphere(2)
    d = mesh_geodesics(torch.tensor(v, dtype=torch.float32), torch.tensor(f), torch.tensor([0, 1]))
    assert isinstance(d, torch.Tensor) and d.dtype == torch.float32 and d.shape == (2, len(v))
    np.testing.assert_allclose(d.numpy(), mesh_geodesics(v, f, np.array([0, 1])), rtol=1e-5, atol=1e-6)


@requires_cuda
def test_cuda_tensors():
    v, f = sphere(2)
    d = mesh_geodesics(torch.tensor(v, device="cuda"), torch.tensor(f, device="cuda"), torch.tensor([0], device="cuda"))
    assert d.device.type == "cuda"
    np.testing.assert_allclose(d.cpu().numpy(), mesh_geodesics(v, f, np.array([0])), atol=1e-12)


def test_batched_heat_equals_one_source_at_a_time():
    from kptool.geodesic.mesh import HeatSolver

    v, f = bumpy()
    src = np.array([0, 17, 200, 17, 5])
    solver = HeatSolver(v, f)
    batched = solver(src)
    single = np.stack([solver(src[i:i + 1])[0] for i in range(len(src))])
    np.testing.assert_allclose(batched, single, rtol=1e-10, atol=1e-12)
    assert np.abs(batched[np.arange(len(src)), src]).max() == 0


def test_heat_matches_potpourri3d():
    """refine=False: potpourri3d's robust heat solver's discretisation (intrinsic Delaunay, t = mean edge^2)."""
    import potpourri3d as pp3d

    v, f = bumpy(3)
    src = np.array([1, 50, 300])
    ref = np.stack([pp3d.MeshHeatMethodDistanceSolver(v, f).compute_distance(int(s)) for s in src])
    ours = mesh_geodesics(v, f, src, method="heat", refine=False)
    # potpourri3d mollifies lengths slightly differently and does not clamp by the Euclidean distance.
    diff = np.abs(ours - ref)
    assert diff.mean() < 1e-3 * ref.max() and diff.max() < 0.02 * ref.max()


def test_intrinsic_delaunay_flips_obtuse_pair_and_keeps_lengths():
    from kptool.geodesic.intrinsic import intrinsic_delaunay

    # Two flat triangles sharing a long edge with two very obtuse opposite angles: flipping gives the short diagonal.
    v = np.array([[-1.0, 0, 0], [1, 0, 0], [0, 0.1, 0], [0, -0.1, 0]])
    f = np.array([[0, 1, 2], [1, 0, 3]])
    faces, length = intrinsic_delaunay(v, f)
    edges = {tuple(sorted((a, b))): length[i, c] for i, face in enumerate(faces)
             for c, (a, b) in enumerate(zip(face, np.roll(face, -1)))}
    assert (2, 3) in edges and (0, 1) not in edges
    assert edges[(2, 3)] == pytest.approx(0.2, abs=1e-4)             # planar, so the flipped edge is straight
    for e in [(0, 2), (1, 2), (0, 3), (1, 3)]:
        assert edges[e] == pytest.approx(np.linalg.norm(v[e[0]] - v[e[1]]), abs=1e-4)


@pytest.mark.parametrize("method", ["heat", "exact"])
def test_vertex_fast_path_equals_general_path(method):
    v, f = bumpy()
    src, tgt = np.array([4, 80, 4]), np.arange(len(v))
    fast = mesh_geodesics(v, f, src, tgt, method=method)
    # The same target vertices as surface points (a face corner each) go through the interpolating path.
    faces_of = np.array([np.flatnonzero((f == t).any(1))[0] for t in tgt])
    corner = np.array([int(np.flatnonzero(f[fi] == t)[0]) for fi, t in zip(faces_of, tgt)])
    general = mesh_geodesics(v, f, src, SurfacePoints(faces_of, np.eye(3)[corner]), method=method)
    np.testing.assert_allclose(fast, general, rtol=1e-12, atol=1e-12)


def test_subdivision_keeps_exact_distances():
    """Midpoint subdivision splits flat triangles into flat triangles: the surface and its geodesics are unchanged."""
    v, f = bumpy()
    src = np.array([0, 123])
    fine_v, fine_f = trimesh.remesh.subdivide(v, f)
    np.testing.assert_array_equal(fine_v[:len(v)], v)                # original vertices keep their indices
    fine = mesh_geodesics(fine_v, fine_f, src, method="exact")[:, :len(v)]
    np.testing.assert_allclose(fine, mesh_geodesics(v, f, src, method="exact"), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("shape", ["sphere", "torus"])
def test_subdivided_heat_is_closer_to_exact(shape):
    if shape == "sphere":
        v, f = sphere(3)
    else:
        m = trimesh.creation.torus(1.0, 0.35, major_sections=48, minor_sections=16)
        v, f = np.asarray(m.vertices), np.asarray(m.faces)
    src = np.random.default_rng(5).choice(len(v), 4, replace=False)
    exact = mesh_geodesics(v, f, src, method="exact")
    plain = relative_error(mesh_geodesics(v, f, src), exact)
    refined = mesh_geodesics(v, f, src, subdivide=1)
    assert refined.shape == exact.shape and np.abs(refined[np.arange(4), src]).max() == 0
    # Measured: sphere 1.1% -> 0.85%, torus 4.1% -> 2.5%.
    assert relative_error(refined, exact) < 0.9 * plain


def test_options_are_checked_and_ignored_by_exact():
    v, f = sphere(1)
    with pytest.raises(KptoolError, match="subdivide"):
        mesh_geodesics(v, f, np.array([0]), subdivide=-1)
    with pytest.raises(KptoolError, match="refine"):
        mesh_geodesics(v, f, np.array([0]), refine=-1)
    np.testing.assert_array_equal(mesh_geodesics(v, f, np.array([0]), method="exact", subdivide=2, refine=False),
                                  mesh_geodesics(v, f, np.array([0]), method="exact"))


def test_cholesky_solve_equals_spsolve():
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    from kptool.geodesic.mesh import _Cholesky

    rng = np.random.default_rng(6)
    a = sp.random(60, 60, density=0.1, random_state=7)
    a = (a @ a.T + sp.eye(60)).tocsr()                                  # sparse SPD
    b = rng.normal(size=(60, 5))
    np.testing.assert_allclose(_Cholesky(a).solve(b), spla.spsolve(a.tocsc(), b), rtol=1e-10, atol=1e-12)
