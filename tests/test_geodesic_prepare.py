"""add_geodesics on a tiny hand-built prepared dataset: values, manifest, resume, force, failures, workers."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from kptool.data import Shape, Transform
from kptool.data.geodesics import KEYPOINT_TABLE, POINTS_TABLE, add_geodesics
from kptool.data.prepared import FORMAT, VERSION, PreparedDataset, extra_path, read_manifest, save_shape, \
    shape_file, write_manifest
from kptool.errors import KptoolError
from kptool.geodesic import UnreachableWarning, distances_to_points


def build(root, broken: bool = False):
    """Two shapes: a two-part mesh with keypoints and a bare cloud without; optionally a corrupt third."""
    a = trimesh.creation.icosphere(2, radius=0.5)
    b = trimesh.creation.box(extents=(0.4, 0.4, 0.4))
    b.apply_translation([1.2, 0, 0])
    mesh = trimesh.util.concatenate([a, b])
    pts, _ = trimesh.sample.sample_surface(mesh, 64, seed=0)
    kps = np.asarray(a.vertices[[0, 7]], dtype=np.float32)
    cloud = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    shapes = [Shape(points=pts.astype(np.float32), id="mesh", vertices=mesh.vertices, faces=mesh.faces,
                    keypoints=kps, keypoint_ids=np.array([0, 1])),
              Shape(points=cloud, id="cloud")]
    records = []
    for s in shapes:
        save_shape(root, s, Transform.from_parts(2.0))
        records.append({"id": s.id, "split": "train", "file": shape_file(s.id), "num_points": s.num_points,
                        "num_keypoints": s.num_keypoints, "has_mesh": s.has_mesh})
    if broken:
        (root / "shapes" / "bad.npz").write_bytes(b"not a zip")
        records.append({"id": "bad", "split": "test", "file": shape_file("bad"), "num_points": 10,
                        "num_keypoints": 2, "has_mesh": False})
    write_manifest(root, {"format": FORMAT, "version": VERSION, "shapes": records, "extras": {}})
    return shapes


def test_tables_values_manifest_and_resume(tmp_path):
    mesh, cloud = build(tmp_path)
    calls = []
    summary = add_geodesics(tmp_path, all_pairs=True, progress=lambda *a: calls.append(a))
    assert summary["computed"] == 2 and summary["skipped"] == 0 and not summary["failed"]
    assert summary["unreachable"] == ["mesh"]                       # keypoints on the sphere, box unreachable
    assert [c[:2] for c in calls] == [(1, 2), (2, 2)]
    kp = np.load(extra_path(tmp_path, KEYPOINT_TABLE, "mesh"))
    assert kp.dtype == np.float32 and kp.shape == (2, 64)
    with pytest.warns(UnreachableWarning):
        ref = distances_to_points(mesh.points, mesh.keypoints, mesh.vertices, mesh.faces)
    np.testing.assert_array_equal(kp, ref.astype(np.float32))
    on_box = mesh.points[:, 0] > 0.9
    assert np.isinf(kp[:, on_box]).all() and np.isfinite(kp[:, ~on_box]).all()
    assert not extra_path(tmp_path, KEYPOINT_TABLE, "cloud").exists()    # no keypoints
    pairs = np.load(extra_path(tmp_path, POINTS_TABLE, "cloud"))
    assert pairs.shape == (50, 50) and (np.diag(pairs) == 0).all()
    np.testing.assert_array_equal(pairs, distances_to_points(cloud.points, np.arange(50)).astype(np.float32))
    manifest = read_manifest(tmp_path)
    assert manifest["extras"][KEYPOINT_TABLE]["method"] == "heat"
    assert manifest["extras"][KEYPOINT_TABLE]["frame"] == "prepared"
    assert manifest["extras"][POINTS_TABLE]["shape"] == "(N, N)"
    ds = PreparedDataset(tmp_path, extras=(KEYPOINT_TABLE,))
    np.testing.assert_array_equal(ds[ds.index_of("mesh")].extras[KEYPOINT_TABLE], kp)

    # Resume: nothing recomputed, files untouched.
    stamp = extra_path(tmp_path, KEYPOINT_TABLE, "mesh").stat().st_mtime_ns
    again = add_geodesics(tmp_path, all_pairs=True)
    assert again["computed"] == 0 and again["skipped"] == 2
    assert extra_path(tmp_path, KEYPOINT_TABLE, "mesh").stat().st_mtime_ns == stamp
    # Another method needs --force, which recomputes.
    with pytest.raises(KptoolError, match="computed with method 'heat'"):
        add_geodesics(tmp_path, method="graph")
    forced = add_geodesics(tmp_path, method="graph", force=True)
    assert forced["computed"] == 1 and read_manifest(tmp_path)["extras"][KEYPOINT_TABLE]["method"] == "graph"
    np.testing.assert_array_equal(np.load(extra_path(tmp_path, KEYPOINT_TABLE, "mesh")),
                                  distances_to_points(mesh.points, mesh.keypoints, method="graph").astype(np.float32))


def test_failures_are_recorded_or_raised(tmp_path):
    build(tmp_path, broken=True)
    summary = add_geodesics(tmp_path, method="exact")
    failed = {f["id"]: f["error"] for f in summary["failed"]}
    assert summary["computed"] == 1 and set(failed) == {"bad"}      # cloud has no keypoints: nothing to do
    assert "unreadable prepared shape file" in failed["bad"]
    with pytest.raises(KptoolError, match="bad"):
        add_geodesics(tmp_path, method="exact", strict=True)
    with pytest.raises(KptoolError, match="exact geodesics need a mesh"):
        add_geodesics(tmp_path, method="exact", all_pairs=True, strict=True)


def test_workers_give_the_same_tables(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    build(one), build(two)
    add_geodesics(one, all_pairs=True)
    summary = add_geodesics(two, all_pairs=True, workers=2)
    assert summary["computed"] == 2
    for name, sid in [(KEYPOINT_TABLE, "mesh"), (POINTS_TABLE, "mesh"), (POINTS_TABLE, "cloud")]:
        np.testing.assert_array_equal(np.load(extra_path(one, name, sid)), np.load(extra_path(two, name, sid)))


def test_bad_options(tmp_path):
    build(tmp_path)
    with pytest.raises(KptoolError, match="unknown geodesic method"):
        add_geodesics(tmp_path, method="fast")
    with pytest.raises(KptoolError, match="no such prepared dataset"):
        add_geodesics(tmp_path / "missing")
