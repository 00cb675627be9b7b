"""PCK on 2D keypoints: hand-worked cases, and `kptool eval pck` on a tiny rendered dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kptool.cli.main import main
from kptool.data.prepare import PrepareOptions, run_prepare
from kptool.data.sources import SyntheticSource
from kptool.io.predictions import Predictions, read_predictions, write_predictions
from kptool.metrics.pck import ImageTruth, box_size, image_name, keypoint_errors, pck, render_truths, score_images
from kptool.render.camera import ViewSampling
from kptool.render.dataset import RenderOptions, run_render


def test_box_size_spans_whole_pixels():
    mask = np.zeros((10, 10), bool)
    assert box_size(mask) == 0
    mask[2, 3] = True
    assert box_size(mask) == 1
    mask[5, 8] = True          # columns 3..8 (6), rows 2..5 (4)
    assert box_size(mask) == 6


def test_image_names():
    assert image_name("rgb/chair-001/03.png") == "chair-001/03"
    assert image_name("chair-001/03") == "chair-001/03"


def truth():
    # three keypoints: ids 4, 7, 9; id 9 hidden; a 100 px image, a 40 px object box
    return ImageTruth(np.array([[50.0, 50.0], [20.0, 30.0], [70.0, 70.0]]), np.array([4, 7, 9]),
                      np.array([True, True, False]), 100.0, 40.0)


def test_keypoint_errors_match_by_id_and_skip_hidden():
    # predictions in another order; id 9 (hidden in the truth) is not scored; id 7 predicted twice: first counts
    uv = np.array([[20.0, 34.0], [59.0, 50.0], [0.0, 0.0], [21.0, 30.0]])
    d, ids = keypoint_errors(uv, np.array([7, 4, 9, 7]), truth())
    np.testing.assert_allclose(d, [9.0, 4.0])
    np.testing.assert_array_equal(ids, [4, 7])
    d, _ = keypoint_errors(uv[:1], np.array([7]), truth())     # id 4 never predicted: infinitely far
    assert np.isinf(d[0]) and d[1] == 4.0


def test_pck_hand_worked():
    # id 4 is 9 px off, id 7 is 4 px off. alpha 0.1: image threshold 10 px (both right),
    # box threshold 4 px (only id 7, exactly at the threshold, counts)
    report = score_images({"a/00": truth()}, {"a/00": (np.array([[59.0, 50.0], [20.0, 34.0]]), np.array([4, 7]),
                                                       np.array([True, False]))})
    assert report.keypoints == 2 and report.images == 1
    assert report.pck_image == 1.0
    assert report.pck_box == 0.5
    # curve: at alpha 0.05 the image threshold is 5 px (only id 7); at 0.09 box threshold 3.6 px: none
    a = report.alphas
    assert report.curve["image"][a.index(0.05)] == 0.5
    assert report.curve["box"][a.index(0.09)] == 0.0
    assert report.curve["box"][a.index(0.23)] == 1.0       # 9.2 px >= 9
    assert report.per_id[4] == {"keypoints": 1, "pck_image": 1.0, "pck_box": 0.0}
    # visibility: id 4 said visible (right), id 7 said hidden (wrong), id 9 not predicted = hidden (right)
    assert report.visibility_accuracy == pytest.approx(2 / 3)
    assert report.missing == 0


def test_pck_empty_is_nan():
    assert np.isnan(pck(np.zeros(0), np.zeros(0), 0.1))


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    root = tmp_path_factory.mktemp("pck")
    run_prepare(SyntheticSource("chair", 2, 0), root / "data", PrepareOptions(points=256))
    run_render(root / "data", root / "renders", RenderOptions(ViewSampling(views=2, elevation=(60, 100), size=48)))
    return root / "renders"


def truth_predictions(renders, shift=(0.0, 0.0)) -> Predictions:
    truths = render_truths(renders)
    return Predictions({name: (t.uv + np.asarray(shift)).astype(np.float32) for name, t in truths.items()},
                       kind="keypoints_2d", method="truth", ordered=True,
                       visible={name: t.visible for name, t in truths.items()},
                       semantic_ids={name: t.ids for name, t in truths.items()})


def test_eval_pck_cli_scores_truth_and_shifted(renders, tmp_path, capsys):
    truths = render_truths(renders)
    assert len(truths) == 4
    path = write_predictions(tmp_path / "p.json", truth_predictions(renders))
    assert main(["eval", "pck", str(path), "--data", str(renders), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pck_image"] == 1.0 and report["pck_box"] == 1.0 and report["visibility_accuracy"] == 1.0
    assert report["keypoints"] == sum(int(t.visible.sum()) for t in truths.values())
    for name in ("pck_curve.csv", "pck_curve.png", "pck_by_id.csv", "pck.json"):
        assert (tmp_path / "p.eval" / name).is_file()
    # every prediction 6 px to the right: within 0.1 x 48 = 4.8 px of nothing, within 0.13 x 48 = 6.24 px
    shifted = write_predictions(tmp_path / "s.json", truth_predictions(renders, (6.0, 0.0)))
    assert main(["eval", "pck", str(shifted), "--data", str(renders), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pck_image"] == 0.0
    assert report["curve"]["image"][report["alphas"].index(0.13)] == 1.0
    assert report["curve"]["image"][report["alphas"].index(0.12)] == 0.0


def test_predictions_keep_record_ids(tmp_path, renders):
    preds = truth_predictions(renders)
    back = read_predictions(write_predictions(tmp_path / "p.json", preds))
    name = next(iter(preds.keypoints))
    np.testing.assert_array_equal(back.ids_of(name), preds.semantic_ids[name])
    np.testing.assert_array_equal(back.visible[name], preds.visible[name])


def test_eval_pck_unknown_image_is_one_error_line(renders, tmp_path, capsys):
    preds = Predictions({"nochair/00": np.zeros((1, 2), np.float32)}, kind="keypoints_2d")
    path = write_predictions(tmp_path / "bad.json", preds)
    assert main(["eval", "pck", str(path), "--data", str(renders)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "nochair/00" in err and "Traceback" not in err
    kp3 = write_predictions(tmp_path / "kp3.json", Predictions({"a": np.zeros((1, 3), np.float32)}))
    assert main(["eval", "pck", str(kp3), "--data", str(renders)]) == 2
    assert "keypoints_2d" in capsys.readouterr().err
