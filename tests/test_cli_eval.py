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


def test_default_out_folder_refuses_only_its_own_files(tmp_path, capsys):
    shapes = make_dataset(tmp_path / "data")
    make_predictions(tmp_path / "p.json", shapes)
    args = [str(tmp_path / "p.json"), "--data", str(tmp_path / "data")]
    code, _, err = run(capsys, "eval", "das", *args)
    assert code == 0, err
    code, _, err = run(capsys, "eval", "miou", *args)      # same default folder, other files
    assert code == 0, err
    names = {p.name for p in (tmp_path / "p.eval").iterdir()}
    assert {"das_by_slot.csv", "miou_euclidean.csv", "keypoints.png"} <= names
    code, _, err = run(capsys, "eval", "miou", *args)      # its own files again: refused
    assert code == 2 and "miou_euclidean.csv" in err and "--force" in err


def test_tables_do_not_depend_on_terminal_width_or_path_length(tmp_path, capsys, monkeypatch):
    deep = tmp_path / ("a-rather-long-folder-name-" * 6) / "data"
    shapes = make_dataset(deep)
    make_predictions(tmp_path / "p.json", shapes)
    outputs = []
    for columns in ("40", "200"):
        monkeypatch.setenv("COLUMNS", columns)
        code, out, err = run(capsys, "eval", "das", str(tmp_path / "p.json"), "--data", str(deep), "--split", "test",
                             "--out", str(tmp_path / f"o{columns}"))
        assert code == 0, err
        outputs.append(out)
    assert outputs[0] == outputs[1]
    lines = outputs[0].splitlines()
    assert f"toy on {deep} (3 shapes, split test)" in lines
    assert any("DAS (mean)" in line and "mean of forward and backward" in line for line in lines)


def test_library_evaluate_matches_the_cli(tmp_path, capsys):
    import kptool

    shapes = make_dataset(tmp_path / "data")
    make_predictions(tmp_path / "p.json", shapes)
    report = kptool.evaluate(tmp_path / "data", tmp_path / "p.json", ["das", "part-corr"])
    code, out, err = run(capsys, "eval", "all", str(tmp_path / "p.json"), "--data", str(tmp_path / "data"), "--json")
    cli = json.loads(out)["metrics"]
    assert report.metrics["das"] == cli["das"] and report.metrics["part-corr"] == cli["part-corr"]
    assert report.files == []          # no output folder given: nothing written


def test_predictions_of_every_kind_round_trip_and_version_1_reads(tmp_path):
    from kptool.io.predictions import read_predictions

    rng = np.random.default_rng(0)
    emb = {"a": rng.random((5, 4)).astype(np.float32), "b/c": rng.random((6, 4)).astype(np.float32)}
    write_predictions(tmp_path / "e.json", Predictions(arrays=emb, kind="embeddings", method="m", split="test"))
    back = read_predictions(tmp_path / "e.json")
    assert back.kind == "embeddings" and back.ids == ["a", "b/c"] and back.split == "test"
    for k in emb:
        np.testing.assert_array_equal(back.arrays[k], emb[k])
    kp2 = Predictions({"a": np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)}, kind="keypoints_2d",
                      visible={"a": np.array([True, False])})
    write_predictions(tmp_path / "k2.json", kp2)
    back = read_predictions(tmp_path / "k2.json")
    np.testing.assert_array_equal(back.keypoints["a"], kp2.keypoints["a"])
    assert back.visible["a"].tolist() == [True, False]
    # a version 1 file (kptool 0.1) is keypoints
    (tmp_path / "v1.json").write_text(json.dumps({"format": "kptool-predictions", "version": 1, "method": "x",
                                                  "shapes": [{"id": "s0", "keypoints": [[0, 1, 2]]}]}))
    v1 = read_predictions(tmp_path / "v1.json")
    assert v1.kind == "keypoints" and v1.keypoints["s0"].tolist() == [[0, 1, 2]]
    # the NPZ must sit beside its document
    doc = json.loads((tmp_path / "e.json").read_text())
    doc["arrays"] = "../e.npz"
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    from kptool.errors import InputError

    with pytest.raises(InputError, match="beside"):
        read_predictions(tmp_path / "bad.json")


def test_extras_reach_batches_memory_mapped(tmp_path):
    from kptool.data.batches import batch_to, collate_shapes
    from kptool.data.prepared import PreparedDataset
    from kptool.errors import InputError

    shapes = make_dataset(tmp_path / "data", geodesics=True)
    ds = PreparedDataset(tmp_path / "data", "test")
    data = ds.torch_dataset(("points", "extras/geodesic_keypoints"))
    batch = batch_to(collate_shapes([data[i] for i in range(3)]), "cpu")
    tables = batch["extras/geodesic_keypoints"]
    assert len(tables) == 3 and all(isinstance(t, np.memmap) for t in tables)   # read only where indexed
    expected = np.linalg.norm(shapes[1].points[None, [0, 1, 2]] - shapes[1].points[:, None], axis=-1).T
    np.testing.assert_allclose(tables[1][:, :5], expected[:, :5], rtol=1e-6)
    with pytest.raises(InputError, match="no 'nope' tables"):
        ds.torch_dataset(("points", "extras/nope"))


def test_a_failed_evaluation_leaves_none_of_its_files(tmp_path, monkeypatch):
    import kptool
    from kptool.errors import KptoolError
    from kptool.metrics.registered import KeypointMIoU

    shapes = make_dataset(tmp_path / "data")
    make_predictions(tmp_path / "p.json", shapes)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "mine.txt").write_text("not kptool's")

    def fail(self, ctx):
        raise KptoolError("miou failed")

    monkeypatch.setattr(KeypointMIoU, "compute", fail)
    # das writes its files first, then miou fails: das's files go, the folder's own file stays
    with pytest.raises(KptoolError, match="miou failed"):
        kptool.evaluate(tmp_path / "data", tmp_path / "p.json", ["das", "miou"], out=tmp_path / "o", grid=2)
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["mine.txt"]
    with pytest.raises(KptoolError, match="miou failed"):
        kptool.evaluate(tmp_path / "data", tmp_path / "p.json", ["das", "miou"], out=tmp_path / "new")
    assert not (tmp_path / "new").exists()
