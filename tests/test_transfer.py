"""2D-3D-2D keypoint transfer: inputs and masks, stages, the pipeline with ground-truth stages, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from kptool.cli.main import main
from kptool.data.prepare import PrepareOptions, run_prepare
from kptool.data.sources import SyntheticSource
from kptool.errors import InputError
from kptool.render.camera import ViewSampling
from kptool.render.dataset import RenderOptions, run_render
from kptool.render.refine import silhouette_iou
from kptool.transfer.inputs import TransferInput, load_input, mask_from_background, resize_input, scale_pixels
from kptool.transfer.models import ModelChoice, build_stages
from kptool.transfer.pipeline import TransferOptions, transfer_image
from kptool.transfer.stages import RenderTruth, SilhouetteSearch, TrueShape


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three built-in chairs (graph geodesics), renders of two views each at 64 px, a 1-epoch embedding run."""
    from kptool.train import train
    from kptool.train.config import resolve_config

    root = tmp_path_factory.mktemp("transfer")
    data = root / "data"
    run_prepare(SyntheticSource("chair", 4, 0), data, PrepareOptions(points=512, split_fractions=(0.5, 0.0, 0.5)))
    assert main(["prepare", "geodesics", str(data), "--method", "graph", "-q"]) == 0
    renders = root / "renders"
    run_render(data, renders, RenderOptions(ViewSampling(views=2, elevation=(60, 95), size=64)))
    config = resolve_config("embed-pointnet", ["train.epochs=1", "data.points=512", "train.batch_size=2",
                                               "train.val_every=0"])
    train(config, data, root / "embed", device="cpu")
    return {"root": root, "data": data, "renders": renders, "embed": root / "embed"}


def test_scale_pixels_keeps_pixel_centres():
    # pixel 0 of a 64 px image covers pixels 0 and 1 of a 128 px one: its centre is at 0.5 there
    np.testing.assert_allclose(scale_pixels(np.array([[0.0, 63.0]]), 64, 128), [[0.5, 126.5]])
    np.testing.assert_allclose(scale_pixels(scale_pixels(np.array([[3.2, 7.0]]), 64, 100), 100, 64), [[3.2, 7.0]])


def test_mask_from_plain_background_and_refusals(tmp_path):
    rgb = np.full((40, 40, 3), 250, np.uint8)
    rgb[10:30, 15:25] = (200, 30, 30)
    mask = mask_from_background(rgb)
    assert mask.sum() == 200 and mask[10:30, 15:25].all()
    with pytest.raises(InputError, match="no object"):
        mask_from_background(np.full((40, 40, 3), 250, np.uint8))
    noisy = np.random.default_rng(0).integers(0, 255, (40, 40, 3)).astype(np.uint8)
    with pytest.raises(InputError, match="not plain"):
        mask_from_background(noisy)
    # a mask file replaces the background rule (any photo)
    Image.fromarray(noisy).save(tmp_path / "photo.png")
    m = np.zeros((40, 40), np.uint8)
    m[5:15, 5:15] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    inp = load_input(tmp_path / "photo.png", "photo", tmp_path / "m.png")
    assert inp.mask.sum() == 100
    Image.fromarray(m[:30, :30]).save(tmp_path / "small.png")
    with pytest.raises(InputError, match="30 x 30"):
        load_input(tmp_path / "photo.png", "photo", tmp_path / "small.png")


def test_resize_input_halves_mask_by_area():
    mask = np.zeros((8, 8), bool)
    mask[0:2, 0:2] = True          # one whole 2 x 2 block
    mask[4, 4] = True              # a quarter of a block: dropped
    small = resize_input(TransferInput("x", np.zeros((8, 8, 3), np.uint8), mask), 4).mask
    assert small[0, 0] and small.sum() == 1


def test_all_ground_truth_transfer_lands_on_the_true_keypoints(world):
    """True shape, true camera, the true shape's own database: keypoints are the annotated points'
    samples, projected with the true camera, so PCK at alpha 0.1 is 1 (the paper's "all GT" row)."""
    from kptool.io.predictions import read_predictions
    from kptool.metrics.pck import evaluate_pck

    out = world["root"] / "allgt"
    assert main(["transfer", str(world["renders"]), "--embedding", str(world["embed"]), "--reconstruction", "true",
                 "--viewpoint", "true", "--semantic-model", "true", "--out", str(out), "-q"]) == 0
    report = evaluate_pck(read_predictions(out / "keypoints2d.json"), world["renders"])
    assert report.images == 8 and report.missing == 0
    assert report.pck_image == 1.0 and report.pck_box >= 0.9
    assert report.visibility_accuracy >= 0.8
    assert len(list((out / "overlays").rglob("*.png"))) == 8
    summary = json.loads((out / "transfer.json").read_text())
    # the summary names every stage the pipeline ran (its per-stage timings are for people, not for tests)
    assert summary["done"] == 8 and summary["failed"] == 0
    assert set(summary["method"]) >= {"shape", "viewpoint", "keypoints", "semantic_model"}
    # the same command again resumes: every image's record is reused, none is redone
    stamps = {p: p.stat().st_mtime_ns for p in (out / "records").rglob("*.json")}
    assert main(["transfer", str(world["renders"]), "--embedding", str(world["embed"]), "--reconstruction", "true",
                 "--viewpoint", "true", "--semantic-model", "true", "--out", str(out), "-q"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "records").rglob("*.json")} == stamps
    # other arguments into the same folder are refused
    assert main(["transfer", str(world["renders"]), "--embedding", str(world["embed"]), "--reconstruction", "true",
                 "--viewpoint", "true", "--out", str(out), "-q"]) == 2


def test_silhouette_search_and_refinement_recover_the_silhouette(world):
    truth = RenderTruth(world["renders"])
    name = truth.image_names()[0]
    shape_id, view = truth.split(name)
    z = truth.views(shape_id)
    inp = TransferInput(name, np.zeros((64, 64, 3), np.uint8), z["silhouette"][view])
    stages = build_stages(ModelChoice("true", "search", str(world["embed"])), truth)
    assert isinstance(stages.viewpoint, SilhouetteSearch) and isinstance(stages.shape, TrueShape)
    result = transfer_image(inp, stages, TransferOptions(size=64, refine_size=64, refine_steps=20))
    assert result.iou[1] >= result.iou[0] - 1e-6
    assert result.iou[1] > 0.8
    # the found view's silhouette, not necessarily its angle (a left-right symmetric chair looks the same
    # from the front and the back)
    from kptool.render.raster import rasterize

    assert silhouette_iou(rasterize(result.shape.vertices, result.shape.faces, result.camera).mask,
                          inp.mask) > 0.8
    assert 0 <= result.camera.azimuth < 2 * math.pi


def test_folder_run_goes_on_past_bad_images(world, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    good = Image.open(world["renders"] / "rgb" / json.loads((world["renders"] / "manifest.json").read_text())
                      ["shapes"][0]["id"] / "00.png")
    good.save(folder / "a.png")
    Image.new("RGB", (64, 48), "white").save(folder / "b-wide.png")
    Image.new("RGB", (64, 64), "white").save(folder / "c-empty.png")
    (folder / "d-broken.png").write_bytes(b"not a png")
    code = main(["transfer", str(folder), "--embedding", str(world["embed"]), "--reconstruction", "true",
                 "--out", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err
    # no rendered dataset, so the true shape cannot be read: every image fails, one line each
    assert code == 2 and err.count("error:") == 1 and "rendered dataset" in err
    from kptool.transfer.run import jobs_for, run_transfer

    truth_stages = build_stages(ModelChoice("true", "search", str(world["embed"])), RenderTruth(world["renders"]))
    from kptool.transfer.pipeline import Pipeline

    summary = run_transfer(jobs_for(folder), Pipeline(truth_stages, TransferOptions(size=64, refine_steps=2)),
                           tmp_path / "o2")
    failed = {f["id"]: f["error"] for f in summary["failures"]}
    assert set(failed) == {"a.png", "b-wide.png", "c-empty.png", "d-broken.png"}   # a.png: not an image of renders
    assert "square" in failed["b-wide.png"] and "no object" in failed["c-empty.png"]
    assert "unreadable" in failed["d-broken.png"]
    assert json.loads((tmp_path / "o2" / "failures.json").read_text())


def test_single_bad_image_is_one_error_line(world, tmp_path, capsys):
    Image.new("RGB", (64, 64), "white").save(tmp_path / "empty.png")
    code = main(["transfer", str(tmp_path / "empty.png"), "--embedding", str(world["embed"]),
                 "--reconstruction", "true", "--out", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err


def test_stage_table_rows(world, tmp_path, capsys):
    out = tmp_path / "stages"
    assert main(["eval", "transfer-stages", str(world["renders"]), "--embedding", str(world["embed"]), "--split", "all",
                 "--rows", "full,shape+viewpoint-gt,all-gt", "--out", str(out), "--refine-steps", "2",
                 "--size", "64", "--json"]) == 0
    rows = {r["row"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["full"]["skipped"] and "reconstruction" in rows["full"]["skipped"]
    assert rows["all-gt"]["pck_image"] == 1.0
    assert rows["shape+viewpoint-gt"]["pck_image"] <= 1.0
    lines = (out / "stages.csv").read_text().splitlines()
    assert lines[0].startswith("row,pck_image,pck_box") and len(lines) == 4
