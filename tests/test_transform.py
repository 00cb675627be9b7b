import numpy as np
import pytest

from kptool.data.preprocess import transform_plane
from kptool.data.transform import Transform, normalization, skeleton_merger_nfact, up_rotation
from kptool.errors import KptoolError


def test_skeleton_merger_maps_min_max_to_unit_interval_and_keeps_aspect():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(100, 3)) * [1.0, 2.0, 0.5] + 3.0
    t = normalization(p, "skeleton-merger")
    q = t.apply(p)
    assert q.min() == pytest.approx(-1.0) and q.max() == pytest.approx(1.0)
    # one scalar scale for all axes: ratios of extents are kept
    np.testing.assert_allclose(np.ptp(q, axis=0) / np.ptp(p, axis=0), t.scale)
    hi, lo = skeleton_merger_nfact(t)
    assert hi == pytest.approx(p.max()) and lo == pytest.approx(p.min())


def test_fernandez_and_unit_sphere():
    p = np.array([[0, 0, 0], [4, 0, 0], [0, 2, 0], [0, 0, 1]], float)
    q = normalization(p, "fernandez").apply(p)
    np.testing.assert_allclose(q.mean(0), 0, atol=1e-12)
    assert np.ptp(q, axis=0).max() == pytest.approx(2.0)
    r = normalization(p, "unit-sphere").apply(p)
    assert np.linalg.norm(r - (r.max(0) + r.min(0)) / 2, axis=1).max() == pytest.approx(1.0)


def test_inverse_round_trip_and_composition():
    rng = np.random.default_rng(1)
    p = rng.normal(size=(50, 3))
    t = Transform.from_parts(rotation=up_rotation("z")).then(normalization(p, "skeleton-merger"))
    np.testing.assert_allclose(t.apply_inverse(t.apply(p)), p, atol=1e-12)
    assert Transform.from_list(t.to_list()).matrix.tolist() == t.matrix.tolist()


def test_up_rotation_z_to_y():
    np.testing.assert_allclose(up_rotation("z") @ [0, 0, 1], [0, 1, 0])
    assert np.linalg.det(up_rotation("z")) == pytest.approx(1.0)
    with pytest.raises(KptoolError):
        up_rotation("x")


def test_plane_follows_points():
    rng = np.random.default_rng(2)
    plane = np.array([1.0, 0, 0, -0.5])           # x = 0.5
    on = np.c_[np.full(10, 0.5), rng.normal(size=(10, 2))]
    t = Transform.from_parts(2.5, up_rotation("z"), [0.1, -0.3, 0.7])
    new = transform_plane(plane, t)
    np.testing.assert_allclose(t.apply(on) @ new[:3] + new[3], 0, atol=1e-12)
    assert np.linalg.norm(new[:3]) == pytest.approx(1.0)
