"""The direct 2D baseline (heatmap2d): decoding, targets, training through kptool train, PCK via --direct."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import requires_cuda
from kptool.cli.main import main
from kptool.data.prepare import PrepareOptions, run_prepare
from kptool.data.sources import SyntheticSource
from kptool.models import build_model
from kptool.models.heatmap2d import decode_heatmaps, gaussian_targets
from kptool.render.camera import ViewSampling
from kptool.render.dataset import RenderOptions, run_render


def test_decode_finds_peaks_and_their_subcell_offsets():
    maps = torch.full((1, 2, 6, 8), -10.0)
    maps[0, 0, 4, 3] = 5.0                       # a sharp peak: its cell
    maps[0, 1, 2, 6] = 5.0                       # and one between cells 6 and 7 (equal scores)
    maps[0, 1, 2, 7] = 5.0
    xy = decode_heatmaps(maps)[0]
    torch.testing.assert_close(xy[0], torch.tensor([3.0, 4.0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(xy[1], torch.tensor([6.5, 2.0]), atol=1e-4, rtol=0)


def test_decode_at_the_border_ignores_cells_outside():
    maps = torch.full((1, 1, 4, 4), -10.0)
    maps[0, 0, 0, 0] = 5.0
    torch.testing.assert_close(decode_heatmaps(maps)[0, 0], torch.tensor([0.0, 0.0]), atol=1e-4, rtol=0)


def test_gaussian_targets_are_distributions_centred_on_the_point():
    t = gaussian_targets(torch.tensor([[2.0, 5.0]]), 8, 1.0).reshape(8, 8)
    assert abs(float(t.sum()) - 1) < 1e-6
    assert divmod(int(t.argmax()), 8) == (5, 2)      # row 5, column 2
    assert torch.isclose(t[5, 1], t[5, 3]) and torch.isclose(t[4, 2], t[6, 2])


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    root = tmp_path_factory.mktemp("heat")
    run_prepare(SyntheticSource("chair", 3, 0), root / "data", PrepareOptions(points=256,
                                                                            split_fractions=(0.67, 0.0, 0.33)))
    run_render(root / "data", root / "renders", RenderOptions(ViewSampling(views=3, elevation=(60, 95), size=64)))
    return root / "renders"


def batch_of(renders, n=4, size=64):
    from kptool.data.batches import collate_shapes
    from kptool.render.images import RenderedImages

    data = RenderedImages(renders, "train", size).torch_dataset(("image", "keypoints_2d", "keypoint_visible",
                                                                 "keypoint_ids"))
    return collate_shapes([data[i] for i in range(n)])


def test_training_steps_pull_the_heat_maps_to_the_keypoints(renders):
    torch.manual_seed(0)
    model = build_model({"name": "heatmap2d", "num_ids": 24, "channels": 32})
    batch = batch_of(renders)
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)
    first = None
    for _ in range(25):
        loss, parts = model.training_loss(batch)
        first = first or parts
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert parts["heatmap"] < 0.8 * first["heatmap"]
    assert parts["error_px"] < 0.6 * first["error_px"]
    out = model.predict({"image": batch["image"]})["keypoints_2d"]
    assert out.shape == (4, 24, 4)
    seen = {int(i) for ids in batch["keypoint_ids"] for i in ids}
    assert {int(i) for i in torch.nonzero(out[0, :, 3]).flatten()} == seen     # only trained ids are predicted


def test_train_preset_then_direct_transfer_and_pck(renders, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "heatmap2d-resnet18", "--data", str(renders), "--out", str(run), "--epochs", "1",
                 "--batch-size", "4", "--set", "data.image_size=32", "--set", "model.channels=16", "--quiet"]) == 0
    out = tmp_path / "direct"
    assert main(["transfer", str(renders), "--direct", str(run), "--split", "test", "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["eval", "pck", str(out / "keypoints2d.json"), "--data", str(renders), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 3 and report["method"] == "direct-2d"
    assert 0.0 <= report["pck_image"] <= 1.0 and report["keypoints"] > 0
    # the same images as the stage table's direct-2d row
    assert main(["eval", "transfer-stages", str(renders), "--direct", str(run), "--rows", "direct-2d",
                 "--out", str(tmp_path / "stages"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["row"] for r in rows] == ["direct-2d"] and rows[0]["pck_image"] == report["pck_image"]


@requires_cuda
def test_a_training_step_on_cuda(renders):
    model = build_model({"name": "heatmap2d", "num_ids": 24, "channels": 16}).cuda()
    batch = batch_of(renders, 2, 32)
    batch = {k: (v.cuda() if isinstance(v, torch.Tensor) else [t.cuda() for t in v] if isinstance(v, list) and v
                 and isinstance(v[0], torch.Tensor) else v) for k, v in batch.items()}
    loss, _ = model.training_loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.predict({"image": batch["image"]})["keypoints_2d"].device.type == "cuda"
