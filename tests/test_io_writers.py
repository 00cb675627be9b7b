"""Writers: round trips through the readers, palette stability, overwrite protection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kptool.errors import OutputError
from kptool.io import keypoint_colors, load_shape, write_keypoints, write_points_ply
from kptool.io.writers import CLOUD_GREY


def test_palette_is_fixed_and_distinct():
    colors = keypoint_colors(60)
    assert colors.dtype == np.uint8 and colors.shape == (60, 3)
    # matplotlib's tab10 blue and orange, then tab20's light blue after the ten tab10 colours
    assert colors[0].tolist() == [31, 119, 180] and colors[1].tolist() == [255, 127, 14]
    assert colors[10].tolist() == [174, 199, 232]
    assert len({tuple(c) for c in colors}) == 60
    np.testing.assert_array_equal(keypoint_colors(65)[60:], colors[:5])
    assert keypoint_colors(0).shape == (0, 3)


def test_points_ply_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(40, 3)).astype(np.float32)
    colors = rng.integers(0, 256, (40, 3)).astype(np.uint8)
    path = write_points_ply(tmp_path / "out" / "cloud.ply", points, colors)
    shape = load_shape(path)
    np.testing.assert_array_equal(shape.points, points)
    np.testing.assert_array_equal(shape.colors, colors)
    write_points_ply(tmp_path / "plain.ply", points)
    assert load_shape(tmp_path / "plain.ply").colors is None


@pytest.fixture
def keypoints():
    rng = np.random.default_rng(1)
    return rng.normal(size=(4, 3)).astype(np.float32), np.array([3, 0, 12, 5]), rng.normal(size=(25, 3))


def test_keypoints_ply_with_cloud(tmp_path, keypoints):
    kp, ids, cloud = keypoints
    shape = load_shape(write_keypoints(tmp_path / "kp.ply", kp, ids=ids, points=cloud))
    assert shape.num_points == 4 + 25
    np.testing.assert_array_equal(shape.points[:4], kp)
    np.testing.assert_allclose(shape.points[4:], cloud, atol=1e-6)
    np.testing.assert_array_equal(shape.colors[:4], keypoint_colors(13)[ids])  # coloured by semantic id
    assert (shape.colors[4:] == CLOUD_GREY).all()
    # without ids, by index; explicit colours win
    np.testing.assert_array_equal(load_shape(write_keypoints(tmp_path / "i.ply", kp)).colors, keypoint_colors(4))
    own = np.full((4, 3), 9, np.uint8)
    assert (load_shape(write_keypoints(tmp_path / "c.ply", kp, colors=own)).colors == 9).all()


def test_keypoints_json_and_npz(tmp_path, keypoints):
    kp, ids, cloud = keypoints
    doc = json.loads(write_keypoints(tmp_path / "kp.json", kp, ids=ids).read_text())
    np.testing.assert_allclose(doc["keypoints"], kp, atol=1e-6)
    assert doc["ids"] == ids.tolist() and doc["colors"] == keypoint_colors(13)[ids].tolist()
    assert "points" not in doc
    with np.load(write_keypoints(tmp_path / "kp.npz", kp, ids=ids, points=cloud), allow_pickle=False) as z:
        np.testing.assert_array_equal(z["keypoints"], kp)
        np.testing.assert_array_equal(z["ids"], ids)
        np.testing.assert_allclose(z["points"], cloud, atol=1e-6)
        assert z["colors"].dtype == np.uint8


@pytest.mark.parametrize("name", ["kp.ply", "kp.json", "kp.npz"])
def test_refuses_to_overwrite(tmp_path, keypoints, name):
    kp = keypoints[0]
    path = tmp_path / name
    path.write_text("user data")
    with pytest.raises(OutputError, match="already exists"):
        write_keypoints(path, kp)
    assert path.read_text() == "user data"
    write_keypoints(path, kp, overwrite=True)
    assert path.read_bytes() != b"user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary files left behind


def test_bad_arguments(tmp_path, keypoints):
    kp, ids, _ = keypoints
    with pytest.raises(OutputError, match="unsupported keypoint file format '.csv'"):
        write_keypoints(tmp_path / "kp.csv", kp)
    with pytest.raises(ValueError, match=r"keypoints must be a \(N, 3\)"):
        write_keypoints(tmp_path / "kp.json", kp[:, :2])
    with pytest.raises(ValueError, match=r"ids must be a \(4\) integer"):
        write_keypoints(tmp_path / "kp.json", kp, ids=ids[:3])
    with pytest.raises(ValueError, match="colors must be integers in 0..255"):
        write_keypoints(tmp_path / "kp.json", kp, colors=np.full((4, 3), 300))
    with pytest.raises(ValueError, match="points contain NaN"):
        write_points_ply(tmp_path / "p.ply", np.full((2, 3), np.nan))
    assert not list(tmp_path.iterdir())
