"""Point-cloud geodesics: k-NN graph Dijkstra against a plain Dijkstra, heat against great circles."""

from __future__ import annotations

import heapq
import warnings

import numpy as np
import pytest
import torch

from kptool.errors import KptoolError
from kptool.geodesic import UnreachableWarning, cloud_geodesics, distances_to_points, knn_graph, mesh_geodesics
from conftest import requires_cuda
from test_geodesic_mesh import great_circle, relative_error, sphere


def naive_knn_dijkstra(points: np.ndarray, source: int, k: int) -> np.ndarray:
    """Brute-force symmetric k-NN graph and a textbook heap Dijkstra: the slow reference."""
    n = len(points)
    d = np.linalg.norm(points[:, None] - points[None], axis=2)
    adj = [dict() for _ in range(n)]
    for i in range(n):
        for j in np.argsort(d[i], kind="stable")[1:k + 1]:
            adj[i][j] = adj[j][i] = d[i, j]
    dist = np.full(n, np.inf)
    dist[source] = 0.0
    heap = [(0.0, source)]
    while heap:
        du, u = heapq.heappop(heap)
        if du > dist[u]:
            continue
        for w, length in adj[u].items():
            if du + length < dist[w]:
                dist[w] = du + length
                heapq.heappush(heap, (dist[w], w))
    return dist


def fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi, theta = np.arccos(1 - 2 * i / n), np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


@pytest.mark.parametrize("k", [3, 8])
def test_graph_matches_naive_dijkstra(k):
    p = np.random.default_rng(0).random((60, 3))
    src = np.array([0, 17, 59])
    d = cloud_geodesics(p, src, method="graph", k=k)
    ref = np.stack([naive_knn_dijkstra(p, s, k) for s in src])
    np.testing.assert_allclose(d, ref, atol=1e-12)


def test_graph_on_a_line_is_euclidean():
    p = np.stack([np.linspace(0, 1, 30), np.zeros(30), np.zeros(30)], axis=1)[::-1]
    np.testing.assert_allclose(cloud_geodesics(p, np.array([4]), method="graph", k=2)[0], np.abs(p[:, 0] - p[4, 0]),
                               atol=1e-12)


def test_knn_graph_is_symmetric_with_euclidean_weights():
    p = np.random.default_rng(1).random((40, 3))
    g = knn_graph(p, 5).toarray()
    np.testing.assert_array_equal(g, g.T)
    i, j = np.nonzero(g)
    np.testing.assert_allclose(g[i, j], np.linalg.norm(p[i] - p[j], axis=1))
    assert ((g > 0).sum(1) >= 5).all()


@pytest.mark.parametrize("method, tol", [("heat", 0.03), ("graph", 0.08)])
def test_sphere_cloud_against_great_circle(method, tol):
    p = fibonacci_sphere(800)
    src = np.array([0, 400, 799])
    assert relative_error(cloud_geodesics(p, src, method=method), great_circle(p[src], p)) < tol


@pytest.mark.parametrize("method", ["heat", "graph"])
def test_two_clusters_are_inf_never_zero(method):
    p = fibonacci_sphere(100)
    q = np.vstack([p, p[:40] * 0.5 + 10.0])          # 40 points: too few for the heat solver
    with pytest.warns(UnreachableWarning, match="2 connected parts"):
        d = cloud_geodesics(q, np.array([0, 120]), method=method)
    assert np.isinf(d[0, 100:]).all() and np.isinf(d[1, :100]).all()
    assert (d[0, 1:100] > 0).all() and (d[1, 100:] > 0).sum() == 39
    np.testing.assert_allclose(d[0, :100], cloud_geodesics(p, np.array([0]), method=method)[0])


def test_tiny_part_falls_back_to_graph_for_heat():
    # 25 points on a line: more than k=20 (a part of its own), fewer than the heat solver needs.
    line = np.stack([10 + np.arange(25) * 0.1, np.zeros(25), np.zeros(25)], axis=1)
    p = np.vstack([fibonacci_sphere(100), line])
    with pytest.warns(UnreachableWarning):
        d = cloud_geodesics(p, np.array([100]), method="heat")
    np.testing.assert_allclose(d[0, 100:], np.arange(25) * 0.1, atol=1e-12)
    assert np.isinf(d[0, :100]).all()


@pytest.mark.parametrize("method", ["heat", "graph"])
def test_single_point(method):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cloud_geodesics(np.zeros((1, 3)), np.array([0]), method=method).tolist() == [[0.0]]


@pytest.mark.parametrize("method", ["heat", "graph"])
def test_duplicate_points_share_distances(method):
    p = fibonacci_sphere(200)
    dup = np.vstack([p, p[:50], p[:50]])             # every one of the first 50 points three times
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = cloud_geodesics(dup, np.array([0, 210]), method=method)
    np.testing.assert_allclose(d[:, :200], cloud_geodesics(p, np.array([0, 10]), method=method))
    np.testing.assert_array_equal(d[:, 200:250], d[:, :50])
    assert d[0, 200] == d[0, 250] == 0.0 and d[1, 10] == 0.0


def test_float_sources_snap_to_nearest_point_and_targets_select():
    p = fibonacci_sphere(100)
    d = cloud_geodesics(p, p[[3, 7]] * 1.01, targets=np.array([7, 3]), method="graph")
    full = cloud_geodesics(p, np.array([3, 7]), method="graph")
    np.testing.assert_array_equal(d, full[:, [7, 3]])


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="fmm"), "unknown point-cloud geodesic method"),
    (dict(k=0), "k must be at least 1"),
    (dict(sources=np.array([100])), "sources must lie"),
    (dict(points=np.zeros((5, 2))), r"shape \(N, 3\)"),
])
def test_bad_inputs(kwargs, match):
    args = dict(points=fibonacci_sphere(100), sources=np.array([0]))
    args.update(kwargs)
    with pytest.raises(KptoolError, match=match):
        cloud_geodesics(**args)


def test_distances_to_points_on_mesh_and_cloud():
    v, f = sphere(3)
    pts = np.vstack([v[:100], (v[f[:50]].mean(1))])     # vertices and face centroids
    kp = v[[5, 60]]
    d = distances_to_points(pts, kp, v, f, method="exact")
    np.testing.assert_allclose(d[:, :100], mesh_geodesics(v, f, np.array([5, 60]), method="exact")[:, :100],
                               atol=1e-9)
    assert d.shape == (2, 150) and np.isfinite(d).all()
    np.testing.assert_array_equal(distances_to_points(pts, kp, method="graph"),
                                  cloud_geodesics(pts, kp, method="graph"))
    np.testing.assert_array_equal(distances_to_points(pts, np.array([1]), v, f, method="graph"),
                                  cloud_geodesics(pts, np.array([1]), method="graph"))
    with pytest.raises(KptoolError, match="exact geodesics need a mesh"):
        distances_to_points(pts, kp, method="exact")


def test_torch_in_torch_out():
    p = fibonacci_sphere(100)
    d = cloud_geodesics(torch.tensor(p, dtype=torch.float64), torch.tensor([0]), method="graph")
    assert isinstance(d, torch.Tensor) and d.dtype == torch.float64
    np.testing.assert_array_equal(d.numpy(), cloud_geodesics(p, np.array([0]), method="graph"))


@requires_cuda
def test_cuda_tensors():
    p = torch.tensor(fibonacci_sphere(100), device="cuda")
    d = distances_to_points(p, p[:2])
    assert d.device.type == "cuda" and d.shape == (2, 100)
