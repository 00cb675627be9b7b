"""Correspondence sets: the user JSON format, the set-distance table D(C_i, C_j), prepare end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from kptool.cli.main import main
from kptool.data import Shape
from kptool.data.correspondences import SET_TABLE, correspondence_sets, set_distance_table
from kptool.data.prepared import PreparedDataset, extra_path, read_manifest
from kptool.errors import InputError
from kptool.io.correspondences import read_correspondences

INF = math.inf


def test_sets_and_the_distance_table_by_hand():
    ids = [np.array([0, 1, 2]), np.array([0, 2]), np.array([1, 2]), np.array([0, 3])]
    index = [np.array([0, 1, 2]), np.array([1, 0]), np.array([0, 1]), np.array([0, 1])]
    tables = [np.array([[0, 1, 4], [1, 0, 2], [4, 2, 0]], float),    # A: d01 = 1, d02 = 4, d12 = 2
              np.array([[3, 0], [0, 5]], float),                    # B: set 0 -> set 2's point 3, back 5: 4
              np.array([[0, INF], [INF, 0]], float),                # C: sets 1 and 2 on separate parts
              np.array([[0, 6], [8, 0]], float)]                    # D: d03 = 7
    assert correspondence_sets(ids) == {0: [(0, 0), (1, 0), (3, 0)], 1: [(0, 1), (2, 0)],
                                        2: [(0, 2), (1, 1), (2, 1)], 3: [(3, 1)]}
    t = set_distance_table(ids, index, tables)
    assert t.ids.tolist() == [0, 1, 2, 3]
    nan = np.nan
    expected = [[0, 1, 4, 7], [1, 0, 2, nan], [4, 2, 0, nan], [7, nan, nan, 0]]
    np.testing.assert_allclose(t.mean, expected)
    assert t.pairs[0, 2] == 2 and t.pairs[1, 2] == 1 and t.unreachable == 1
    rows = t.rows_for(np.array([2, 0]), size=6)          # a shape with sets 2 and 0; ids up to 5 exist
    assert rows.shape == (2, 6) and rows.dtype == np.float32
    np.testing.assert_allclose(rows[:, :4], [expected[2], expected[0]])
    assert np.isnan(rows[:, 4:]).all()


def _write(path, doc):
    path.write_text(json.dumps(doc))
    return path


def _doc(*annotators):
    return {"format": "kptool-correspondences", "version": 1,
            "annotators": [{"name": n, "sets": s} for n, s in annotators]}


def test_reading_and_applying_a_correspondence_file(tmp_path):
    doc = _doc(("alice", [{"name": "tip", "points": [{"shape": "a", "index": 3}, {"shape": "b.xyz", "xyz": [0.9, 0, 0]}]}]),
               ("bob", [{"name": "tip too", "points": [{"shape": "a", "index": 3}]},
                        {"points": [{"shape": "b", "index": 0}]}]))
    sets = read_correspondences(_write(tmp_path / "c.json", doc))
    assert [(s["id"], s["annotator"], s["name"]) for s in sets.sets] == [
        (0, "alice", "tip"), (1, "bob", "tip too"), (2, "bob", "set 2")]
    cloud = Shape(points=np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32))
    a = sets.apply(Shape(points=cloud.points.copy()), "a")
    assert a.keypoint_ids.tolist() == [0, 1] and a.keypoint_point_index.tolist() == [3, 3]
    b = sets.apply(Shape(points=cloud.points.copy()), "b.xyz")
    assert b.keypoint_ids.tolist() == [0] and b.keypoint_point_index.tolist() == [1]    # xyz snapped to point 1
    np.testing.assert_allclose(b.keypoints, [[0.9, 0, 0]])
    mesh = Shape(points=cloud.points.copy(), vertices=cloud.points.astype(float) * 2, faces=np.array([[0, 1, 2]]))
    m = sets.apply(mesh, "a")
    np.testing.assert_allclose(m.keypoints, [[0, 0, 2], [0, 0, 2]])       # vertex 3 of the mesh
    assert m.keypoint_point_index is None


@pytest.mark.parametrize("doc, problem", [
    ({"format": "other"}, "not a correspondence file"),
    (_doc(("x", [{"points": [{"shape": "a", "index": 1, "xyz": [0, 0, 0]}]}])), r"sets\[0\]\.points\[0\].*exactly one"),
    (_doc(("x", [{"points": [{"shape": "a", "index": -1}]}])), "index must be a non-negative integer"),
    (_doc(("x", [{"points": [{"shape": "a", "index": 1}, {"shape": "a", "index": 2}]}])), "already in this set"),
    (_doc(("x", [{"points": []}])), "non-empty list of points"),
])
def test_bad_correspondence_files(tmp_path, doc, problem):
    with pytest.raises(InputError, match=problem):
        read_correspondences(_write(tmp_path / "bad.json", doc))


def test_prepare_folder_with_correspondences_then_set_distances(tmp_path, capsys):
    rng = np.random.default_rng(0)
    folder = tmp_path / "shapes"
    folder.mkdir()
    for name in ("a", "b", "c", "d"):      # segments along x, sampled at sorted random places
        x = np.sort(rng.uniform(0, rng.uniform(1, 2), 64))
        np.savetxt(folder / f"{name}.xyz", np.c_[x, np.zeros(64), np.zeros(64)])
    ends = {"start": 0, "end": 63}
    doc = _doc(*[(who, [{"name": where, "points": [{"shape": s, "index": i} for s in "abcd"]}])
                 for who, (where, i) in zip(("alice", "bob"), ends.items())])
    _write(tmp_path / "sets.json", doc)
    out = tmp_path / "data"
    assert main(["prepare", "folder", "--root", str(folder), "--correspondences", str(tmp_path / "sets.json"),
                 "--out", str(out), "--points", "64", "--splits", "0.5,0.25,0.25", "-q"]) == 0
    manifest = read_manifest(out)
    assert manifest["keypoint_ids"] == [0, 1]
    assert [s["name"] for s in manifest["source"]["correspondences"]["sets"]] == ["start", "end"]
    assert main(["prepare", "geodesics", str(out), "--method", "auto", "-q"]) == 0
    manifest = read_manifest(out)
    described = manifest["extras"][SET_TABLE]
    assert manifest["extras"]["geodesic_keypoints"]["surfaces"] == {"mesh": 0, "cloud": 4}
    assert described["computed_on"] == "train" and described["shapes"] == 2 and described["ids"] == [0, 1]
    ds = PreparedDataset(out)
    # the two sets are the ends of each segment: D(start, end) = the mean length along the 20-NN graph
    lengths = [float(np.ptp(ds[ds.index_of(i)].points[:, 0])) for i in ds.ids if ds[ds.index_of(i)].meta["split"] == "train"]
    assert described["mean"][0][1] == pytest.approx(np.mean(lengths), rel=1e-4)
    for sid in ds.ids:
        rows = np.load(extra_path(out, SET_TABLE, sid))
        assert rows.shape == (2, 2) and rows[0, 1] == pytest.approx(described["mean"][0][1], rel=1e-5)
