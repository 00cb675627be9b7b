"""Viewpoint from RGB: bins and labels, the rotation-error metric, training on renders, kptool eval viewpoint."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import requires_cuda
from kptool.cli.main import main
from kptool.data.prepare import PrepareOptions, run_prepare
from kptool.data.sources import SyntheticSource
from kptool.errors import KptoolError
from kptool.metrics.viewpoint import rotation_error, camera_rotations, summarize, viewpoint_errors
from kptool.models import build_model
from kptool.models.viewpoint import (decode_azimuth, decode_elevation, elevation_centres, two_hot_azimuth,
                                     two_hot_elevation)
from kptool.render.camera import ViewSampling
from kptool.render.dataset import RenderOptions, run_render
from kptool.render.images import RenderedImages, resize_rgb
from kptool.train.checkpoint import load_checkpoint
from kptool.viewpoint import load_viewpoint_predictor, predict_dataset_viewpoints, predict_viewpoints

DEG = math.pi / 180


def test_rotation_error_by_hand():
    # camera on +z looking at the origin vs camera straight above (el 0) at azimuth 90:
    # R1 = diag(1, -1, -1); R2 rows: right (0, 0, -1), down (1, 0, 0), forward (0, -1, 0);
    # tr(R1^T R2) = 0 + 0 + 0 = 0, so the angle is arccos(-1/2) = 120 degrees.
    R = camera_rotations([0.0, math.pi / 2], [math.pi / 2, 0.0])
    np.testing.assert_allclose(R[0], [[1, 0, 0], [0, -1, 0], [0, 0, -1]], atol=1e-12)
    np.testing.assert_allclose(R[1], [[0, 0, -1], [1, 0, 0], [0, -1, 0]], atol=1e-12)
    assert math.degrees(rotation_error(R[1:], R[:1])[0]) == pytest.approx(120.0)
    # a turn about the up axis (level cameras), a change of elevation, and an azimuth change seen from
    # straight above (an in-plane rotation) are rotations by that angle
    e = viewpoint_errors([40 * DEG, 10 * DEG, 0.0, 350 * DEG], [90 * DEG, 50 * DEG, 0.0, 90 * DEG],
                         [10 * DEG, 10 * DEG, 25 * DEG, 20 * DEG], [90 * DEG, 80 * DEG, 0.0, 90 * DEG])
    np.testing.assert_allclose(e["rotation"], [30, 30, 25, 30], atol=1e-9)
    np.testing.assert_allclose(e["azimuth"], [30, 0, -25, -30], atol=1e-9)      # wrapped: 350 - 20 = -30
    np.testing.assert_allclose(e["elevation"], [0, -30, 0, 0], atol=1e-9)
    s = summarize({"rotation": np.array([10.0, 29.0, 31.0, 100.0]), "azimuth": np.array([-5.0, 1, 2, 3]),
                   "elevation": np.zeros(4)})
    assert s["rotation_error_median"] == 30 and s["acc_pi_6"] == 0.5 and s["azimuth_error_median"] == 2.5


def test_two_hot_labels_and_decoding_by_hand():
    # azimuth centres (k + 1/2) 15 degrees: 15 sits halfway between bins 0 and 1; 359 is 0.433 of the way
    # from bin 23 (352.5) to bin 0 (367.5), across 0
    labels = two_hot_azimuth(torch.tensor([15 * DEG, 359 * DEG, 7.5 * DEG], dtype=torch.float64))
    assert labels[0, 0] == pytest.approx(0.5) and labels[0, 1] == pytest.approx(0.5)
    assert labels[1, 23] == pytest.approx(1 - 6.5 / 15) and labels[1, 0] == pytest.approx(6.5 / 15)
    assert labels[2, 0] == pytest.approx(1.0)
    torch.testing.assert_close(labels.sum(1), torch.ones(3, dtype=torch.float64))
    # elevation centres k pi / 11, ends included; expectation decodes a two-hot exactly
    assert elevation_centres()[-1] == pytest.approx(math.pi)
    el = torch.tensor([0.0, math.pi / 22, 1.0, math.pi], dtype=torch.float64)
    soft = two_hot_elevation(el)
    assert soft[1, 0] == pytest.approx(0.5) and soft[1, 1] == pytest.approx(0.5) and soft[3, 11] == pytest.approx(1)
    torch.testing.assert_close(decode_elevation(soft.clamp(min=1e-30).log()), el)
    # the circular mean of a bin pair with equal weights is their midpoint; a one-hot gives its centre
    az = decode_azimuth(labels.clamp(min=1e-30).log())
    torch.testing.assert_close(az[[0, 2]], torch.tensor([15 * DEG, 7.5 * DEG], dtype=torch.float64))
    assert 0 <= float(az.min()) and float(az.max()) < 2 * math.pi


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    base = tmp_path_factory.mktemp("viewpoint")
    run_prepare(SyntheticSource("chair", 4, 0), base / "chairs", PrepareOptions(points=128,
                                                                                split_fractions=(0.5, 0.25, 0.25)))
    run_render(base / "chairs", base / "renders", RenderOptions(ViewSampling(views=8, size=32, elevation=(50, 110))))
    return base


def _cli(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


TRAIN = ["--preset", "viewpoint-resnet18", "--set", "data.image_size=32", "--batch-size", 8, "--device", "cpu",
         "-q", "--json"]


def test_training_on_renders_lowers_the_viewpoint_error(renders, tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = _cli(["train", "--data", renders / "renders", "--out", run, "--epochs", 14, *TRAIN], capsys)
    assert code == 0, err
    assert json.loads(out)["best"]["metric"] == "rotation_error_median"
    train_views = RenderedImages(renders / "renders", "train", 32)
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    torch.manual_seed(0)
    untrained = build_model(ckpt["config"]["model"])
    before = predict_dataset_viewpoints(untrained, train_views, torch.device("cpu"))
    predictor = load_viewpoint_predictor(run / "checkpoints" / "last.pt", "cpu")
    after = predict_dataset_viewpoints(predictor.model, train_views, torch.device("cpu"))
    err_before = summarize(viewpoint_errors(before["azimuth"], before["elevation"], before["true_azimuth"],
                                            before["true_elevation"]))["rotation_error_median"]
    err_after = summarize(viewpoint_errors(after["azimuth"], after["elevation"], after["true_azimuth"],
                                           after["true_elevation"]))["rotation_error_median"]
    assert err_after < 0.5 * err_before, (err_before, err_after)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["train"]["loss"] < 0.5 * log[0]["train"]["loss"]
    assert "acc_pi_6" in log[-1]["val"]
    # the library predictor takes uint8 arrays of another size and float tensors alike
    item = train_views[0]
    rgb = (train_views.read_image(item["id"], item["view"]))
    az_a, el_a = predict_viewpoints(run / "checkpoints" / "last.pt", rgb[None], "cpu")
    az_b, el_b = predictor.predict(item["image"][None])
    np.testing.assert_allclose([az_a[0], el_a[0]], [az_b[0], el_b[0]], atol=1e-5)
    big = np.kron(rgb, np.ones((2, 2, 1), np.uint8))
    torch.testing.assert_close(predictor.prepare([big])[0], resize_rgb(torch.from_numpy(big).permute(2, 0, 1)[None]
                                                                       .float() / 255, 32)[0])
    with pytest.raises(KptoolError, match="square"):
        predictor.predict(torch.zeros(1, 3, 32, 40))

    # kptool eval viewpoint, with refinement against the true silhouettes
    code, out, err = _cli(["eval", "viewpoint", "--checkpoint", run / "checkpoints" / "last.pt", "--data",
                           renders / "renders", "--split", "train", "--out", tmp_path / "eval", "--refine", "--steps", 5, "--limit", 3, "--json",
                           "--device", "cpu"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert set(report["summary"]) == {"predicted", "refined"} and report["summary"]["predicted"]["images"] == 3
    rows = (tmp_path / "eval" / "viewpoint.csv").read_text().splitlines()
    assert len(rows) == 4 and "refined_rotation_error_deg" in rows[0]
    # --limit 3 of the 16 train views: evenly spaced, views 0, 8 and 15; same errors as computed above
    column = rows[0].split(",").index("rotation_error_deg")
    expected = viewpoint_errors(after["azimuth"], after["elevation"], after["true_azimuth"],
                                after["true_elevation"])["rotation"][[0, 8, 15]]
    np.testing.assert_allclose([float(r.split(",")[column]) for r in rows[1:]], expected, atol=1e-3)
    assert (tmp_path / "eval" / "viewpoint-errors.png").stat().st_size > 1000
    code, _, err = _cli(["eval", "viewpoint", "--checkpoint", run, "--data", renders / "renders", "--out",
                         tmp_path / "eval"], capsys)
    assert code == 2 and "--force" in err
    # the authors' distance-only refinement leaves the angles, hence the errors, as predicted
    code, out, err = _cli(["eval", "viewpoint", "--checkpoint", run, "--data", renders / "renders", "--split",
                           "train", "--out", tmp_path / "eval2", "--refine", "--only-distance", "--steps", 3,
                           "--limit", 2, "--json", "--device", "cpu"], capsys)
    assert code == 0, err
    s = json.loads(out)["summary"]
    assert s["refined"]["rotation_error_median"] == pytest.approx(s["predicted"]["rotation_error_median"], abs=1e-3)


def test_resume_matches_a_straight_run(renders, tmp_path, capsys):
    straight, split = tmp_path / "straight", tmp_path / "split"
    data = ["--data", renders / "renders"]
    assert _cli(["train", *data, "--out", straight, "--epochs", 2, *TRAIN], capsys)[0] == 0
    assert _cli(["train", *data, "--out", split, "--epochs", 1, *TRAIN], capsys)[0] == 0
    code, _, err = _cli(["train", "--out", split, "--resume", "--epochs", 2, "--device", "cpu", "-q"], capsys)
    assert code == 0, err
    a, b = (load_checkpoint(r / "checkpoints" / "last.pt")["model"] for r in (straight, split))
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_data_of_the_wrong_kind_is_one_error_line(renders, tmp_path, capsys):
    code, _, err = _cli(["train", "--data", renders / "chairs", "--out", tmp_path / "a", *TRAIN], capsys)
    assert code == 2 and "prepared shape dataset" in err and "kptool render" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "a").exists()
    code, _, err = _cli(["train", "--preset", "skeleton-merger", "--data", renders / "renders", "--out",
                         tmp_path / "b", "-q"], capsys)
    assert code == 2 and "rendered image dataset" in err and len(err.splitlines()) == 1
    code, _, err = _cli(["train", "--data", renders / "renders", "--out", tmp_path / "c", *TRAIN, "--set",
                         "data.image_size=3"], capsys)
    assert code == 2 and "data.image_size" in err


@requires_cuda
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    model = build_model({"name": "viewpoint"}).eval()
    images = torch.rand(2, 3, 64, 64)
    cpu = model.predict({"image": images})["viewpoint"]
    gpu = model.cuda().predict({"image": images.cuda()})["viewpoint"].cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-3, rtol=1e-3)
