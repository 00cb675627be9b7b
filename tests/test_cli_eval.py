"""`kptool eval` end to end on a tiny prepared dataset built here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kptool.cli.main import main
from kptool.data.prepared import save_extra, save_shape, write_manifest
from kptool.data.shape import Shape
from kptool.data.transform import Transform
from kptool.io.predictions import Predictions, write_predictions
from kptool.metrics import dual_alignment_score, miou_curve, part_correspondence_ratio

SCALE = 2.0


def make_dataset(root, n=4, keypoints=True, geodesics=False):
    rng = np.random.default_rng(0)
    records, shapes = [], []
    for i in range(n):
        pts = rng.random((64, 3)).astype(np.float32) * 2 - 1
        shape = Shape(points=pts, id=f"s{i}", point_labels=(pts[:, 1] > 0).astype(np.int64) + 1)
        if keypoints:
            shape.keypoints = pts[[0, 1, 2]]
            shape.keypoint_ids = np.array([0, 1, 2 + i % 2])
        save_shape(root, shape, Transform.from_parts(SCALE))
        if geodesics:
            save_extra(root, "geodesic_keypoints", shape.id,
                       np.linalg.norm(pts[None, [0, 1, 2]] - pts[:, None], axis=-1).T.astype(np.float32))
        shapes.append(shape)
        records.append({"id": shape.id, "split": "test" if i < 3 else "train", "file": f"shapes/{shape.id}.npz",
                        "num_points": 64, "num_keypoints": 3 if keypoints else 0, "has_mesh": False,
                        "has_part_labels": True})
    write_manifest(root, {"format": "kptool-prepared", "version": 1, "category": "toy", "shapes": records,
                          "extras": {"geodesic_keypoints": {}} if geodesics else {}})
    return shapes


def make_predictions(path, shapes, ids=None):
    rng = np.random.default_rng(1)
    kps = {s.id: s.points[rng.choice(64, 4, replace=False)] for s in shapes}
    if ids is not None:
        kps = {i: kps.get(i, np.zeros((4, 3), np.float32)) for i in ids}
    write_predictions(path, Predictions(kps, method="toy"))
    return kps


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_all_json_matches_library(tmp_path, capsys):
    shapes = make_dataset(tmp_path / "data", geodesics=True)
    kps = make_predictions(tmp_path / "p.json", shapes)
    code, out, err = run(capsys, "eval", "all", str(tmp_path / "p.json"), "--data", str(tmp_path / "data"),
                         "--json", "--method", "random", "--perturbation", "noise", "--levels", "0,0.05")
    assert code == 0, err
    report = json.loads(out)
    m = report["metrics"]
    pred = [kps[s.id] for s in shapes]
    das = dual_alignment_score(pred, [s.keypoints for s in shapes], [s.keypoint_ids for s in shapes])
    assert {k: m["das"][k] for k in ("forward", "backward", "das")} == pytest.approx(das.to_dict())
    assert [s["forward"] for s in m["das"]["by_slot"]] == pytest.approx([s.forward for s in das.by_slot])
    assert [i["id"] for i in m["das"]["by_id"]] == [0, 1, 2, 3]
    assert m["das"]["by_id"][0]["name"] is None   # this toy dataset names no ids
    curve = miou_curve(pred, [s.keypoints for s in shapes], points=[s.points for s in shapes], scales=[SCALE] * 4)
    assert m["miou"]["euclidean"]["iou"] == pytest.approx(curve.y.tolist())
    assert m["miou"]["frame"] == "original" and "geodesic" in m["miou"]
    pc = part_correspondence_ratio(pred, [s.points for s in shapes], [s.point_labels for s in shapes])
    assert m["part-corr"]["ratio"] == pytest.approx(pc.ratio)
    assert m["repeatability"]["noise"]["repeatability"][0] == 1.0   # seeded random: same points again
    out_dir = tmp_path / "p.eval"
    names = {p.name for p in out_dir.iterdir()}
    assert {"keypoints.png", "das_by_slot.csv", "das_by_id.csv", "miou.png", "miou_euclidean.csv",
            "miou_geodesic.csv", "part_correspondence.csv", "repeatability_noise.png",
            "repeatability_noise.csv"} <= names
    rows = (out_dir / "miou_euclidean.csv").read_text().splitlines()
    assert rows[0] == "threshold,iou" and len(rows) == 51


def test_eval_table_split_and_out(tmp_path, capsys):
    shapes = make_dataset(tmp_path / "data")
    make_predictions(tmp_path / "p.json", shapes)
    code, out, err = run(capsys, "eval", "das", str(tmp_path / "p.json"), "--data", str(tmp_path / "data"),
                         "--split", "test", "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert "DAS (mean)" in out and "3 shapes" in out
    assert "forward alignment per keypoint slot" in out
    assert (tmp_path / "o" / "keypoints.png").is_file()
    # a second run refuses to overwrite without --force
    code, out, err = run(capsys, "eval", "das", str(tmp_path / "p.json"), "--data", str(tmp_path / "data"),
                         "--out", str(tmp_path / "o"))
    assert code == 2 and "--force" in err


def test_repeatability_without_predictions(tmp_path, capsys, monkeypatch):
    make_dataset(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "eval", "repeatability", "--data", "data", "--method", "fps", "-k", "4",
                         "--perturbation", "rotation-so3", "--levels", "0,90", "--json")
    assert code == 0, err
    r = json.loads(out)["metrics"]["repeatability"]
    assert r["rotation-so3"]["level"] == [0.0, 90.0] and r["rotation-so3"]["repeatability"][0] == 1.0
    assert (tmp_path / "repeatability-fps.eval" / "repeatability_rotation-so3.png").is_file()


@pytest.mark.parametrize("case", ["unknown-id", "empty", "no-annotations", "no-detector"])
def test_eval_errors_are_one_line(tmp_path, capsys, case):
    shapes = make_dataset(tmp_path / "data", keypoints=case != "no-annotations")
    pred = tmp_path / "p.json"
    metric = "das"
    if case == "unknown-id":
        make_predictions(pred, shapes, ids=["s0", "nope"])
        expected = "nope"
    elif case == "empty":
        write_predictions(pred, Predictions({}))
        expected = "has no shapes"
    elif case == "no-annotations":
        make_predictions(pred, shapes)
        expected = "needs keypoint annotations"
    else:
        metric, expected = "repeatability", "--method or --checkpoint"
        make_predictions(pred, shapes)
    code, out, err = run(capsys, "eval", metric, str(pred), "--data", str(tmp_path / "data"))
    assert code == 2
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_split_defaults_to_the_predictions_split(tmp_path, capsys):
    shapes = make_dataset(tmp_path / "data")
    test_ids = [s.id for s in shapes[:3]]             # make_dataset puts the first 3 in "test"
    kps = {s.id: s.points[:4] for s in shapes[:3]}
    write_predictions(tmp_path / "p.json", Predictions(kps, method="toy", split="test"))
    code, out, err = run(capsys, "eval", "das", str(tmp_path / "p.json"), "--data", str(tmp_path / "data"),
                         "--json", "--out", str(tmp_path / "o"))
    assert code == 0, err
    report = json.loads(out)
    assert report["split"] == "test" and report["num_shapes"] == len(test_ids)
    assert "no predictions" not in err
