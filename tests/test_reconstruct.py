"""Single-view reconstruction: voxel targets, marching cubes, the two estimators, the pipeline, its evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from kptool.cli.main import main
from kptool.data.prepare import PrepareOptions, run_prepare
from kptool.data.sources import SyntheticSource
from kptool.errors import KptoolError
from kptool.reconstruct import load_reconstructor, surface_samples, voxelise, voxels_to_mesh
from kptool.reconstruct.quality import chamfer, voxel_iou
from kptool.data.batches import collate_shapes
from kptool.models.reconstruction import SKETCH_FIELDS, sketch_targets
from kptool.render.images import RenderedImages
from kptool.reconstruct.voxels import voxel_centres
from kptool.render.dataset import read_views


def _cli(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_voxelising_a_box_gives_its_voxels():
    # a 2 x 1.03125 x 1.03125 box: x spans the cube [-1, 1]; in y and z its faces cut voxels 7 and 24
    # (index coordinates 7.25 and 23.75), so the surface-and-filled occupancy is 32 x 18 x 18 voxels
    box = trimesh.creation.box(extents=(2.0, 1.03125, 1.03125))
    occ = voxelise(box.vertices + [5.0, -3.0, 1.0], box.faces, 32)     # the canonical frame removes the offset
    assert occ.dtype == bool and occ.shape == (32, 32, 32)
    assert occ.sum() == 32 * 18 * 18
    assert occ[:, 7:25, 7:25].all() and not occ[:, :7].any() and not occ[:, 25:].any()
    # scaled by 10, the same grid; a box on the +x side fills the +x voxels (axes x, y, z)
    np.testing.assert_array_equal(voxelise(box.vertices * 10, box.faces, 32), occ)
    half = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    occ = voxelise(half.vertices + [0.5, 0, 0], half.faces, 16, frame=(np.zeros(3), 1.0))
    assert occ[8:].any() and not occ[:7].any()


def test_voxelise_rejects_what_is_not_a_mesh():
    with pytest.raises(KptoolError, match="triangle mesh"):
        voxelise(np.zeros((4, 3)), np.zeros((0, 3), int))
    with pytest.raises(KptoolError, match="degenerate"):
        voxelise(np.zeros((3, 3)), [[0, 1, 2]])


def test_marching_cubes_of_a_sphere_samples_the_sphere():
    c = voxel_centres(32)
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    occ = (x ** 2 + y ** 2 + z ** 2 <= 0.7 ** 2).astype(np.float32)
    mesh = voxels_to_mesh(occ)
    assert mesh.is_watertight and mesh.volume == pytest.approx(4 / 3 * np.pi * 0.7 ** 3, rel=0.03)
    points = surface_samples(mesh, 2048, seed=1)
    radius = np.linalg.norm(points, axis=1)
    assert points.shape == (2048, 3) and np.abs(radius - 0.7).max() < 2 / 32     # within one voxel
    assert np.abs(points.mean(0)).max() < 0.045     # area-weighted: no side favoured (1 sigma of the mean: 0.009)
    # a box off-centre comes back where it was (voxel frame, not marching cubes' index frame)
    box = ((np.abs(x - 0.3) < 0.5) & (np.abs(y) < 0.2) & (np.abs(z) < 0.4)).astype(np.float32)
    np.testing.assert_allclose(voxels_to_mesh(box).bounds, [[-0.1875, -0.1875, -0.375], [0.8125, 0.1875, 0.375]])
    with pytest.raises(KptoolError, match="empty reconstruction"):
        voxels_to_mesh(np.zeros((8, 8, 8)))


def test_reconstruction_measures_by_hand():
    a = np.zeros((4, 4, 4))
    a[:2] = 1
    b = np.zeros((4, 4, 4))
    b[1:3] = 1
    assert voxel_iou(a, b) == pytest.approx(1 / 3)
    assert voxel_iou(np.zeros(3), np.zeros(3)) == 1.0
    # one point each: |x - y| both ways
    assert chamfer(np.zeros((1, 3)), np.array([[0.0, 3.0, 4.0]])) == pytest.approx(10.0)


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    """Six built-in chairs (4 train, 2 test), 2 views at 32 x 32, with 16^3 voxel grids."""
    root = tmp_path_factory.mktemp("reconstruct")
    data = root / "chairs"
    run_prepare(SyntheticSource("chair", 6, 0), data, PrepareOptions(points=128, split_fractions=(0.67, 0.0, 0.33)))
    assert main(["prepare", "voxels", str(data), "--resolution", "16", "-q"]) == 0
    out = root / "renders"
    assert main(["render", str(data), "--views", "2", "--size", "32", "--elevation", "60,100", "--out", str(out),
                 "-q"]) == 0
    return out


def test_rendered_views_give_the_sketches_and_voxel_targets(renders):
    views = RenderedImages(renders, "train")
    assert len(views) == 2 * len(views.records) and len(views.records) >= 3
    item = views.torch_dataset(("image", *SKETCH_FIELDS, "extras/voxels-16"))[1]
    raw = read_views(renders, item["id"])
    sil = raw["silhouette"][1]
    v, u = np.argwhere(sil)[0]
    d = raw["distance"][1]
    assert item["extras/voxels-16"].shape == (16, 16, 16) and item["extras/voxels-16"].any()
    true = sketch_targets(collate_shapes([{k: item[k] for k in SKETCH_FIELDS}]))
    assert true["depth_map"].shape == (1, 1, 32, 32) and true["normal_map"].shape == (1, 3, 32, 32)
    assert float(true["depth_map"][0, 0, v, u]) == pytest.approx((raw["depth"][1, v, u] - d) / d)
    assert float(true["depth_map"][0, 0][~torch.from_numpy(sil)].abs().max()) == 0
    assert torch.equal(true["silhouette"][0, 0] > 0.5, torch.from_numpy(sil))
    with pytest.raises(KptoolError, match="no 'voxels-64' table"):
        views.torch_dataset(("image", "extras/voxels-64"))


def _train(preset, renders, run, *sets, epochs=8):
    args = ["train", "-p", preset, "-d", renders, "-o", run, "--epochs", epochs, "--batch-size", 4, "--device", "cpu",
            "--set", "model.image_size=32", "--set", "train.val_every=0", "-q", *sum((["--set", s] for s in sets), [])]
    assert main([str(a) for a in args]) == 0
    return [json.loads(line)["train"] for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(renders, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    sketch = _train("sketch-resnet18", renders, root / "sketch", "model.backbone=resnet10",
                    "model.decoder_channels=[32,16,16,8,8]")
    voxels = _train("voxels-from-sketch", renders, root / "voxels", "model.resolution=16", "model.channels=[32,16]",
                    "model.latent=32", "model.encoder=resnet10")
    return root, sketch, voxels


def test_training_reduces_the_sketch_and_voxel_losses(trained):
    _, sketch, voxels = trained
    # mean training loss of the last epoch against the first (2 batches of 4 views per epoch)
    assert sketch[-1]["loss"] < 0.6 * sketch[0]["loss"]
    assert all(sketch[-1][k] < sketch[0][k] for k in ("depth", "normal", "silhouette"))
    assert voxels[-1]["loss"] < 0.6 * voxels[0]["loss"]


def test_voxel_estimator_trains_on_predicted_sketches(trained, renders, tmp_path, capsys):
    root = trained[0]
    log = _train("voxels-from-sketch", renders, tmp_path / "pred", "model.resolution=16", "model.channels=[32,16]",
                 "model.latent=32", "model.encoder=resnet10", f"model.sketches={root / 'sketch'}", epochs=2)
    assert len(log) == 2 and all(np.isfinite(r["loss"]) for r in log)
    weights = torch.load(tmp_path / "pred" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert not any(k.startswith("net.") for k in weights)          # the frozen sketch estimator is not saved
    rec = load_reconstructor(root / "sketch", tmp_path / "pred", device="cpu")
    assert rec.voxel_model.sketch_source == "rendered"
    code, _, err = _cli(["train", "-p", "voxels-from-sketch", "-d", renders, "-o", tmp_path / "bad", "--set",
                         f"model.sketches={tmp_path / 'none'}"], capsys)
    assert code == 2 and err.startswith("error:") and "no such checkpoint" in err


def test_training_without_voxel_tables_fails_before_writing(renders, tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = _cli(["train", "-p", "voxels-from-sketch", "-d", renders, "-o", run, "--set", "model.resolution=64",
                         "--set", "model.channels=[32,16,8,8]"], capsys)
    assert code == 2 and "error:" in err and "no 'voxels-64' table" in err and not run.exists()


def test_reconstructor_from_checkpoints(trained, renders):
    root = trained[0]
    rec = load_reconstructor(root / "sketch", root / "voxels", device="cpu", samples=256)
    views = RenderedImages(renders, "test")
    images = np.stack([views.read_image(*views.ids[s:s + 1], v) for s, v in views.items])   # (B, S, S, 3) uint8
    results = rec(images)
    assert len(results) == len(images) and rec.resolution == 16
    r = results[0]
    assert r.sketches.shape == (5, 32, 32) and r.voxels.shape == (16, 16, 16)
    assert 0 <= r.voxels.min() and r.voxels.max() <= 1
    np.testing.assert_allclose(np.linalg.norm(r.sketches[1:4], axis=0), 1, atol=1e-4)
    if r.error is None:
        assert r.points.shape == (256, 3) and np.abs(r.points).max() <= 1 + 1e-5
    # the same predictions from a float (B, 3, S, S) batch
    again = rec.predict(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)[1]
    np.testing.assert_allclose(again[0].numpy(), r.voxels, atol=1e-5)
    with pytest.raises(KptoolError, match="not a sketch-estimator"):
        load_reconstructor(root / "voxels", root / "voxels", device="cpu")


def test_eval_reconstruction_cli(trained, renders, tmp_path, capsys):
    root = trained[0]
    out = tmp_path / "eval"
    args = ["eval", "reconstruction", renders, "--sketch", root / "sketch", "--voxels", root / "voxels",
            "--out", out, "--json"]
    code, stdout, err = _cli(args, capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["images"] == 2 * summary["shapes"] and summary["resolution"] == 16
    assert 0 <= summary["mean"]["voxel_iou"] <= 1 and 0 <= summary["mean"]["voxel_iou_true_sketch"] <= 1
    assert summary["empty"] == summary["images"] or summary["mean"]["chamfer"] > 0
    rows = (out / "reconstruction.csv").read_text().splitlines()
    assert rows[0].startswith("id,view,category,voxel_iou,chamfer") and len(rows) == 1 + summary["images"]
    code, _, err = _cli(args, capsys)
    assert code == 2 and "would overwrite" in err
    code, _, err = _cli(["eval", "reconstruction", renders, "--sketch", tmp_path / "none", "--voxels",
                         root / "voxels"], capsys)
    assert code == 2 and err.startswith("error:") and "none" in err


def test_prepare_voxels_lists_shapes_without_a_mesh(tmp_path, capsys):
    src = tmp_path / "shapes"
    src.mkdir()
    np.savetxt(src / "cloud.xyz", np.random.default_rng(0).normal(size=(300, 3)))
    box = trimesh.creation.box(extents=(1.0, 0.5, 0.25))
    box.export(src / "box.obj")
    data = tmp_path / "data"
    assert main(["prepare", "folder", "--root", str(src), "--out", str(data), "--points", "64", "-q"]) == 0
    code, stdout, _ = _cli(["prepare", "voxels", data, "--resolution", 16, "--json"], capsys)
    summary = json.loads(stdout)
    assert code == 3 and summary["computed"] == 1 and [f["id"] for f in summary["failed"]] == ["cloud"]
    assert "no mesh" in summary["failed"][0]["error"]
    grid = np.load(data / "extras" / "voxels-16" / "box.npy")
    # the box's 2 : 1 : 0.5 sides at 16^3: 16 x 8 x 4 voxels, plus the layer a face on a voxel boundary may take
    extent = [int(grid.any(axis=tuple(a for a in range(3) if a != k)).sum()) for k in range(3)]
    assert grid.dtype == np.uint8 and extent[0] == 16 and extent[1] in (8, 9) and extent[2] in (4, 5)
    assert grid.sum() == np.prod(extent)                               # solid
