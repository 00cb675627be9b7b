"""KeypointNet annotation JSON: the real release files and malformed ones."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from kptool.errors import InputError
from kptool.io import load_shape, read_keypointnet_annotations

CHAIR_ID = "88382b877be91b2a572f8e1c1caad99e"


@pytest.fixture(scope="module")
def chairs(shared_data):
    return read_keypointnet_annotations(shared_data / "keypointnet/annotations/chair.json")


def test_real_files(shared_data, chairs):
    planes = read_keypointnet_annotations(shared_data / "keypointnet/annotations/airplane.json")
    assert len(chairs) == 999 and len(planes) == 1022
    assert {a.class_id for a in chairs.values()} == {"03001627"}
    assert {a.class_id for a in planes.values()} == {"02691156"}
    ids = np.unique(np.concatenate([a.semantic_ids for a in chairs.values()]))
    assert len(ids) == 21 and ids.min() == 0


def test_chair_record(chairs):
    ann = chairs[CHAIR_ID]
    assert ann.semantic_ids.tolist() == [0, 1, 2, 3, 4, 5, 17, 18, 19, 20]
    # kp_indexes [6, 9] and [7, 8] name list positions; positions 6..9 hold ids 17..20
    assert ann.symmetric_pairs.tolist() == [[0, 1], [2, 3], [4, 5], [17, 20], [18, 19]]
    assert ann.face_index.tolist() == [1690, 1105, 1715, 3078, 2842, 3090, 813, 1414, 957, 2417]
    np.testing.assert_allclose(ann.face_uv.sum(axis=1), 1, atol=1e-6)
    assert ann.rotation_groups == []


def test_rotation_groups(chairs):
    swivel = [a for a in chairs.values() if a.rotation_groups]
    assert len(swivel) == 96
    first = swivel[0]
    assert all(set(g.tolist()) <= set(first.semantic_ids.tolist()) for g in first.rotation_groups)


def test_xyz_is_the_pcd_point(shared_data, chairs):
    planes = read_keypointnet_annotations(shared_data / "keypointnet/annotations/airplane.json")
    pcds = sorted((shared_data / "keypointnet/pcds").glob("*/*.pcd"))
    assert len(pcds) == 14
    for pcd in pcds:
        ann = (chairs if pcd.parent.name == "03001627" else planes)[pcd.stem]
        shape = ann.apply(load_shape(pcd))
        np.testing.assert_allclose(shape.points[shape.keypoint_point_index], shape.keypoints, atol=1e-5)
        assert shape.category == pcd.parent.name and shape.keypoint_ids.dtype == np.int64


def test_apply_checks_point_index(shared_data, chairs):
    shape = load_shape(shared_data / f"keypointnet/pcds/03001627/{CHAIR_ID}.pcd")
    shape.points = shape.points[:100]
    with pytest.raises(InputError, match="chair.json: model 88382b.*out of range for its cloud of 100 points"):
        chairs[CHAIR_ID].apply(shape)


GOOD = {"class_id": "03001627", "model_id": "m0",
        "keypoints": [{"xyz": [0.1, 0.2, 0.3], "rgb": [1, 2, 3], "semantic_id": 4, "pcd_info": {"point_index": 7},
                       "mesh_info": {"face_index": 9, "face_uv": [0.2, 0.3, 0.5]}},
                      {"xyz": [-0.1, 0.2, 0.3], "semantic_id": 5}],
        "symmetries": {"reflection": [{"kp_indexes": [0, 1]}], "rotation": []}}


def test_minimal_record(tmp_path):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps([GOOD]))
    ann = read_keypointnet_annotations(path)["m0"]
    assert ann.point_index.tolist() == [7, -1] and ann.face_index.tolist() == [9, -1]
    assert np.isnan(ann.face_uv[1]).all() and ann.symmetric_pairs.tolist() == [[4, 5]]


def broken(edit):
    rec = copy.deepcopy(GOOD)
    edit(rec)
    return [copy.deepcopy(GOOD) | {"model_id": "other"}, rec]


@pytest.mark.parametrize("doc, problem", [
    ({"a": 1}, "must hold a list of records, got dict"),
    ([GOOD, "text"], "record 1: the record must be an object"),
    (broken(lambda r: r.pop("model_id")), "record 1: model_id must be a non-empty string"),
    (broken(lambda r: r.update(keypoints={})), "record 1: keypoints must be a list"),
    (broken(lambda r: r["keypoints"][1].update(xyz=[1, 2])), "record 1: keypoints[1].xyz must be 3 finite numbers"),
    (broken(lambda r: r["keypoints"][0].update(xyz=[1, 2, "3"])), "keypoints[0].xyz must be 3 finite numbers"),
    (broken(lambda r: r["keypoints"][0].update(semantic_id="4")), "keypoints[0].semantic_id must be a non-negative"),
    (broken(lambda r: r["keypoints"][0].update(pcd_info={"point_index": -1})), "keypoints[0].pcd_info.point_index"),
    (broken(lambda r: r["keypoints"][0]["mesh_info"].update(face_uv=[0, 1])), "keypoints[0].mesh_info.face_uv"),
    (broken(lambda r: r["keypoints"][1].update(semantic_id=4)), "keypoints must be distinct semantic_ids"),
    (broken(lambda r: r["symmetries"].update(reflection=[{"kp_indexes": [0, 2]}])),
     "symmetries.reflection[0].kp_indexes must be a list of 2 keypoint indexes below 2"),
    (broken(lambda r: r["symmetries"].update(reflection=[{"kp_indexes": [0, 1, 1]}])), "reflection[0].kp_indexes"),
    (broken(lambda r: r["symmetries"].update(rotation=[{"kp_indexes": "01"}])), "rotation[0].kp_indexes"),
    (broken(lambda r: r.update(model_id="other")), "record 1: model_id 'other' appears twice"),
])
def test_wrong_shape(tmp_path, doc, problem):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError) as err:
        read_keypointnet_annotations(path)
    assert "ann.json" in str(err.value) and problem in str(err.value), str(err.value)


def test_not_json_and_missing(tmp_path):
    path = tmp_path / "ann.json"
    path.write_text('[{"class_id": ')
    with pytest.raises(InputError, match="ann.json: not a JSON file"):
        read_keypointnet_annotations(path)
    with pytest.raises(InputError, match="nope.json: no such file"):
        read_keypointnet_annotations(tmp_path / "nope.json")
