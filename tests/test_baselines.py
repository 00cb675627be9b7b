"""Baselines: ISS (vs a literal loop and Open3D), Harris 3D, FPS, random, selection."""

from __future__ import annotations

import glob

import numpy as np
import pytest

from kptool.baselines import BASELINES, EMBEDDING_METHODS, get_baseline, harris3d_keypoints, iss_saliency, model_resolution, select
from kptool.errors import KptoolError

try:
    import open3d as o3d
except ImportError:  # optional: the comparison runs where open3d is installed
    o3d = None


def cube_surface(n: int = 11) -> np.ndarray:
    """Grid points on the surface of the cube [-1, 1]^3."""
    g = np.linspace(-1, 1, n)
    a, b = (x.ravel() for x in np.meshgrid(g, g, indexing="ij"))
    faces = []
    for axis in range(3):
        others = [i for i in range(3) if i != axis]
        for side in (-1.0, 1.0):
            f = np.zeros((a.size, 3))
            f[:, axis], f[:, others[0]], f[:, others[1]] = side, a, b
            faces.append(f)
    return np.unique(np.concatenate(faces).round(9), axis=0)


def naive_iss(p, rs, rn, g21, g32, min_nb):
    """ISS as written in Open3D's ISSKeypoints.cpp, one point at a time."""
    n = len(p)
    third = np.zeros(n)
    for i in range(n):
        nb = p[np.linalg.norm(p - p[i], axis=1) < rs]
        if len(nb) < min_nb:
            continue
        mu = nb.mean(axis=0)
        cov = (nb - mu).T @ (nb - mu) / len(nb)
        if np.abs(cov).max() <= 1e-12:
            continue
        e3, e2, e1 = np.linalg.eigvalsh(cov)
        if e2 / e1 < g21 and e3 / e2 < g32:
            third[i] = e3
    keys = []
    for i in range(n):
        if third[i] > 0:
            nb = np.flatnonzero(np.linalg.norm(p - p[i], axis=1) < rn)
            if len(nb) >= min_nb and all(third[i] >= third[j] for j in nb):
                keys.append(i)
    return np.array(keys, dtype=np.int64), third


def read_pcd(path):
    lines = open(path).read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("DATA")) + 1
    return np.array([[float(v) for v in line.split()[:3]] for line in lines[start:]])


def test_iss_matches_literal_loop():
    rng = np.random.default_rng(0)
    p = rng.random((400, 3)) * [1.0, 0.6, 0.3]
    for args in [(0.12, 0.1, 0.975, 0.975, 5), (0.2, 0.15, 0.8, 0.9, 10)]:
        idx, sal = iss_saliency(p, *args)
        ref_idx, ref_sal = naive_iss(p, *args)
        np.testing.assert_allclose(sal, ref_sal, rtol=1e-9, atol=1e-15)
        np.testing.assert_array_equal(idx, ref_idx)


def test_iss_plane_has_no_keypoints_and_default_radii():
    g = np.linspace(0, 1, 20)
    plane = np.stack([*np.meshgrid(g, g), np.zeros((20, 20))], -1).reshape(-1, 3)
    idx, sal = iss_saliency(plane)       # e3 = 0 everywhere on a plane: nothing is salient
    assert len(idx) == 0 and np.all(sal == 0)
    assert model_resolution(plane) == pytest.approx(1 / 19)


def assert_same_as_open3d(p, *args):
    """Open3D's ISS keypoints equal ours, up to exact saliency ties.

    Two points whose neighbourhoods are identical have mathematically equal
    saliency; Open3D then keeps one, the other or both depending on the
    floating-point order of its sums, while we keep both. So: theirs is a subset
    of ours, and each extra point of ours has a tie within the suppression radius.
    """
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p))
    theirs = {tuple(x) for x in np.asarray(o3d.geometry.keypoint.compute_iss_keypoints(pc, *args).points)}
    idx, sal = iss_saliency(p, *args)
    assert theirs <= {tuple(x) for x in p[idx]}
    r = args[1] if args else 4 * model_resolution(p)
    extra = [i for i in idx if tuple(p[i]) not in theirs]
    for i in extra:
        near = np.flatnonzero((np.linalg.norm(p - p[i], axis=1) < r) & (np.arange(len(p)) != i))
        assert np.any(np.abs(sal[near] - sal[i]) <= 1e-9 * sal[i])
    return len(theirs), len(extra)


@pytest.mark.skipif(o3d is None, reason="open3d not installed (optional comparison)")
def test_iss_matches_open3d_on_random_clouds():
    rng = np.random.default_rng(1)
    for _ in range(3):
        p = rng.random((1500, 3))
        for args in [(), (0.1, 0.08, 0.9, 0.9, 8)]:
            assert_same_as_open3d(p, *args)[0] > 0


@pytest.mark.skipif(o3d is None, reason="open3d not installed (optional comparison)")
def test_iss_matches_open3d_on_keypointnet_clouds(shared_data):
    files = sorted(glob.glob(str(shared_data / "keypointnet" / "pcds" / "*" / "*.pcd")))[:6]
    assert files
    found = [assert_same_as_open3d(read_pcd(f)) for f in files]
    assert sum(e for _, e in found) <= 0.1 * sum(t for t, _ in found)   # ties are rare


def test_harris3d_finds_cube_corners():
    cube = cube_surface()
    idx, response = harris3d_keypoints(cube, radius=0.45, threshold=1e-4)
    np.testing.assert_array_equal(np.sort(np.abs(cube[idx]).sum(axis=1)), np.full(8, 3.0))
    # response = det(mean n n^T): a face interior has one normal, so det = 0 (k + 0 - k * 1^2)
    centre = np.flatnonzero((np.abs(cube) == [1, 0, 0]).all(axis=1))[0]
    assert response[centre] == pytest.approx(0.0, abs=1e-12)


def test_harris3d_response_with_given_normals():
    # 3 points, orthonormal normals, all within the radius: C = I/3, det = 1/27, trace = 1
    p = np.array([[0.0, 0, 0], [0.1, 0, 0], [0, 0.1, 0]])
    idx, response = harris3d_keypoints(p, radius=1.0, normals=np.eye(3))
    np.testing.assert_allclose(response, 1 / 27)
    np.testing.assert_array_equal(idx, [0, 1, 2])   # ties all survive suppression


def test_select_orders_and_pads():
    score = np.array([0.0, 5.0, 1.0, 3.0, 2.0])
    np.testing.assert_array_equal(select(np.array([1, 2]), score, None), [1, 2])
    np.testing.assert_array_equal(select(np.array([2, 1]), score, 2), [1, 2])
    np.testing.assert_array_equal(select(np.array([2]), score, 3), [2, 1, 3])   # padded by score
    with pytest.raises(KptoolError):
        select(np.array([0]), score, 6)


def test_fps_baseline_matches_naive_farthest_points():
    rng = np.random.default_rng(2)
    p = rng.random((300, 3)).astype(np.float32)
    det = get_baseline("fps", 12)
    idx = det.indices(p)
    assert len(set(idx.tolist())) == 12 and idx[0] == 0
    chosen, d = [0], np.linalg.norm(p - p[0], axis=1)
    for _ in range(11):
        chosen.append(int(np.argmax(d)))
        d = np.minimum(d, np.linalg.norm(p - p[chosen[-1]], axis=1))
    np.testing.assert_array_equal(idx, chosen)
    np.testing.assert_array_equal(det(p), p[chosen])


def test_random_baseline_is_seeded():
    p = np.random.default_rng(3).random((100, 3)).astype(np.float32)
    a, b, c = get_baseline("random", 7, seed=1), get_baseline("random", 7, seed=1), get_baseline("random", 7, seed=2)
    assert len({tuple(x) for x in a(p)}) == 7
    np.testing.assert_array_equal(a(p), b(p))
    assert not np.array_equal(a(p), c(p))


@pytest.mark.parametrize("name", [n for n in BASELINES if n not in EMBEDDING_METHODS])
def test_baselines_follow_the_detector_protocol(name):
    from kptool.detect.base import Detector

    p = np.random.default_rng(4).random((256, 3)).astype(np.float32)
    det = get_baseline(name, 6)
    assert isinstance(det, Detector) and det.name == name and det.ordered is False
    out = det.detect_batch([p, p[:200]])
    assert [o.shape for o in out] == [(6, 3), (6, 3)] and out[0].dtype == np.float32
    assert all(np.isin(o.view([("", o.dtype)] * 3), p.view([("", p.dtype)] * 3)).all() for o in out)


def test_get_baseline_errors():
    with pytest.raises(KptoolError, match="unknown baseline"):
        get_baseline("sift")
    with pytest.raises(KptoolError, match="unknown parameter"):
        get_baseline("iss", radius=0.1)
    with pytest.raises(KptoolError, match="at least 1"):
        get_baseline("fps", 0)
    with pytest.raises(KptoolError, match=r"\(N, 3\)"):
        get_baseline("iss")(np.zeros((4, 2)))
