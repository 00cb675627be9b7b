"""Dense semantic embeddings (paper 002) through kptool: train, database, detect, embed-db, eval mge, baselines."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import requires_cuda
from kptool.cli.main import main
from kptool.data.prepared import PreparedDataset
from kptool.models import MODELS, build_model
from kptool.train.checkpoint import load_checkpoint
from kptool.train.config import resolve_config


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def mugs(tmp_path_factory):
    """12 built-in mugs of 384 points with 20-NN graph geodesics and the set-distance table."""
    root = tmp_path_factory.mktemp("embed") / "mugs"
    assert main(["prepare", "synthetic", "-c", "mug", "-n", "12", "--points", "384", "--splits", "0.5,0.25,0.25",
                 "-o", str(root), "-q"]) == 0
    assert main(["prepare", "geodesics", str(root), "--method", "graph", "-q"]) == 0
    return root


@pytest.fixture(scope="module")
def trained(mugs, tmp_path_factory):
    from kptool.train import train

    out = tmp_path_factory.mktemp("embed") / "run"
    config = resolve_config("embed-pointnet", ["train.epochs=12", "data.points=384", "train.batch_size=3",
                                               "train.val_metrics=[loss, mge]"])
    summary = train(config, mugs, out, device="cpu")
    return out, summary


def _mge(capsys, predictions, data, split):
    report = json.loads(run(capsys, "eval", "mge", predictions, "--data", data, "--split", split, "--json"))
    return report["metrics"]["mge"]


def test_training_learns_embeddings_far_better_than_random(mugs, trained, tmp_path, capsys):
    run_dir, summary = trained
    history = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert history[-1]["train"]["loss"] < 0.5 * history[0]["train"]["loss"]
    assert {"loss", "mge", "mge_euclidean"} <= set(history[-1]["val"])      # validation logs mGE too
    learned, rnd = tmp_path / "learned.json", tmp_path / "random.json"
    run(capsys, "detect", mugs, "--checkpoint", run_dir, "--split", "train", "--kind", "embeddings", "--out", learned)
    run(capsys, "detect", mugs, "--method", "random-embedding", "--split", "train", "--out", rnd)
    assert learned.with_suffix(".npz").is_file()
    ours, floor = _mge(capsys, learned, mugs, "train"), _mge(capsys, rnd, mugs, "train")
    assert ours["geodesic"]["pairs"] == floor["geodesic"]["pairs"] > 0
    assert ours["geodesic"]["mge"] < 0.5 * floor["geodesic"]["mge"]
    assert ours["euclidean"]["mge"] < 0.5 * floor["euclidean"]["mge"]


def test_the_database_makes_ordered_keypoints_with_ids(mugs, trained, tmp_path, capsys):
    run_dir, _ = trained
    for name in ("best.pt", "last.pt"):
        ckpt = load_checkpoint(run_dir / "checkpoints" / name)
        db = ckpt["meta"]["embedding_database"]
        assert db["split"] == "train" and db["shapes"] == 6
        assert ckpt["model"]["database"].shape == (13, 128)     # the 13 mug keypoint ids
    ds = PreparedDataset(mugs, "test")
    shape = ds[0]
    import trimesh

    mesh = tmp_path / "mug.ply"
    trimesh.Trimesh(shape.vertices, shape.faces).export(mesh)
    doc = json.loads(run(capsys, "detect", mesh, "--checkpoint", run_dir))
    assert doc["keypoint_ids"] == list(range(13)) and len(doc["shapes"][0]["keypoints"]) == 13
    kp = tmp_path / "kp.json"
    run(capsys, "detect", mugs, "--checkpoint", run_dir, "--split", "test", "--out", kp)
    das = json.loads(run(capsys, "eval", "das", kp, "--data", mugs, "--json", "--grid", "0"))
    assert das["metrics"]["das"]["das"] > 0.5
    # another annotated set makes another database: here the test split's 3 shapes
    other = tmp_path / "other.pt"
    run(capsys, "embed-db", run_dir, "--data", mugs, "--split", "test", "--out", other, "-q")
    ckpt = load_checkpoint(other)
    assert ckpt["meta"]["embedding_database"]["split"] == "test"
    assert not torch.equal(ckpt["model"]["database"], load_checkpoint(run_dir / "checkpoints" / "best.pt")[
        "model"]["database"])
    assert main(["embed-db", str(run_dir), "--data", str(mugs), "--out", str(other)]) == 2    # exists: --force
    assert "already exists" in capsys.readouterr().err


def test_shot_is_a_method_that_gives_embeddings(mugs, tmp_path, capsys):
    out = tmp_path / "shot.json"
    run(capsys, "detect", mugs, "--method", "shot", "--split", "test", "--out", out)
    result = _mge(capsys, out, mugs, "test")
    assert np.isfinite(result["geodesic"]["mge"]) and result["geodesic"]["unreachable_policy"] == "max"
    assert main(["detect", str(mugs), "--method", "shot", "--split", "test", "--kind", "keypoints"]) == 2
    assert "not keypoints" in capsys.readouterr().err


@pytest.mark.parametrize("preset", ["embed-pointnet", "embed-pointnet2", "embed-dgcnn"])
def test_every_backbone_takes_a_training_step(mugs, preset):
    config = resolve_config(preset)
    model = build_model(config["model"])
    assert config["model"]["dim"] == 128 and config["train"]["batch_size"] == 4
    data = PreparedDataset(mugs, "train").torch_dataset(model.inputs)
    from kptool.data.batches import collate_shapes

    batch = collate_shapes([data[i] for i in range(3)])
    loss, parts = model.training_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and parts["positives"] > 0
    assert all(p.grad is not None for p in model.head.parameters())
    out = model.predict({"points": batch["points"]})
    assert out["embeddings"].shape == (3, 384, 128) and out["keypoints"].shape == (3, 0, 3)   # no database yet


def test_a_checkpoint_loads_whatever_the_database_size():
    model = MODELS.build({"name": "dense-embedding", "backbone": {"name": "pointnet"}, "dim": 8})
    model.set_database(np.array([2, 5]), np.ones((2, 8)))
    fresh = MODELS.build({"name": "dense-embedding", "backbone": {"name": "pointnet"}, "dim": 8})
    fresh.load_state_dict(model.state_dict())
    assert fresh.keypoint_ids == [2, 5] and fresh.num_keypoints == 2
    points = torch.rand(1, 64, 3)
    kp = fresh.predict({"points": points})["keypoints"]
    assert kp.shape == (1, 2, 3)
    assert all(any(torch.equal(k, p) for p in points[0]) for k in kp[0])      # keypoints are points of the cloud


def test_a_model_without_database_has_no_keypoints_to_detect(tmp_path, capsys):
    from kptool.train.checkpoint import VERSION, WEIGHTS_FORMAT, save_checkpoint

    config = resolve_config("embed-pointnet", ["model.backbone.input_transform=false"])
    model = build_model(config["model"])
    path = tmp_path / "bare.pt"     # weights as `kptool export-weights` writes them, without a database
    save_checkpoint(path, {"format": WEIGHTS_FORMAT, "version": VERSION, "config": config,
                           "model": model.state_dict(), "frame": {}, "meta": {}})
    cloud = tmp_path / "cloud.xyz"
    np.savetxt(cloud, np.random.default_rng(0).normal(size=(2048, 3)))
    assert main(["detect", str(cloud), "--checkpoint", str(path)]) == 2
    assert "embed-db" in capsys.readouterr().err


@requires_cuda
def test_a_training_step_and_the_database_on_cuda(mugs):
    config = resolve_config("embed-dgcnn")
    model = build_model(config["model"]).cuda()
    from kptool.data.batches import batch_to, collate_shapes

    data = PreparedDataset(mugs, "train")
    batch = batch_to(collate_shapes([data.torch_dataset(model.inputs)[i] for i in range(3)]), torch.device("cuda"))
    loss, _ = model.training_loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    model.after_training(data, torch.device("cuda"))
    kp = model.predict({"points": batch["points"]})["keypoints"]
    assert kp.is_cuda and kp.shape == (3, 13, 3)


def _two_blob_shapes(count: int, seed: int):
    """Shapes made of two identical blobs at x = -0.6 and x = +0.6 (128 points each).

    Sets 0 and 2 are the top and bottom point of the left blob, 1 and 3 those of the right
    one: the same local geometry at two places, so only where a point is tells them apart.
    Returns ``points (count, 256, 3)``, ``keypoint_ids`` and ``keypoint_point_index`` per shape,
    and the ``(4, 4)`` rows of D (mean distances between the sets).
    """
    g = torch.Generator().manual_seed(seed)
    shapes = []
    for _ in range(count):
        blob = torch.randn(128, 3, generator=g)
        blob = blob / blob.norm(dim=1, keepdim=True) * (0.1 + 0.1 * torch.rand(3, generator=g))   # an ellipsoid
        order = torch.argsort(blob[:, 1], descending=True)                                         # index 0: top
        blob = blob[order[[0, *range(2, 127), 1, 127]]]                                           # top first, bottom last
        shapes.append(torch.cat([blob - torch.tensor([0.6, 0.0, 0.0]), blob + torch.tensor([0.6, 0.0, 0.0])]))
    points = torch.stack(shapes)
    ids = torch.tensor([0, 2, 1, 3])
    index = torch.tensor([0, 127, 128, 255])
    kp = points[:, index]
    table = torch.cdist(kp, kp).mean(0)[torch.argsort(ids)][:, torch.argsort(ids)]                 # by set id
    return points, [ids] * count, [index] * count, table


@pytest.mark.parametrize("preset", ["embed-pointnet", "embed-pointnet2", "embed-dgcnn"])
def test_every_backbone_sees_where_a_point_is(preset):
    """Two clouds of one batch, the second a translated copy of the first: their embeddings
    differ. PointNet++ sees only offsets to its centres; without the coordinates as point
    features (``in_channels: 0``, what embed-pointnet2 first had) it gave the copy the same
    embeddings to rounding, and its mGE stayed near random."""
    config = resolve_config(preset)
    torch.manual_seed(0)
    model = build_model(config["model"])
    cloud = torch.randint(-32, 33, (1, 1024, 3)).float() / 64          # dyadic: translating is exact
    batch = torch.cat([cloud, cloud + torch.tensor([0.25, -0.5, 0.125])])
    with torch.no_grad():
        emb = model.embed(batch)
    change = (emb[1] - emb[0]).norm(dim=-1).mean()
    spread = (emb[0] - emb[0].mean(0)).norm(dim=-1).mean()
    assert change > 0.1 * spread


def test_pointnet2_embeddings_learn_identical_parts_at_different_places():
    """A PointNet++ embedding trained on shapes of two identical blobs sends each blob's set to
    its own blob on new shapes (a translation-invariant network could only guess: half)."""
    config = resolve_config("embed-pointnet2")
    config["model"]["backbone"].update(set_abstraction=[[128, 0.2, 16, [32, 32, 64]], [32, 0.4, 16, [64, 64, 128]]],
                                       feature_propagation=[[128, 128], [128, 128]])
    torch.manual_seed(0)
    model = build_model(config["model"])
    points, ids, index, table = _two_blob_shapes(12, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(60):
        pick = [(4 * step + i) % len(points) for i in range(4)]
        loss, _ = model.training_loss({"points": points[pick], "keypoint_ids": [ids[i] for i in pick],
                                       "keypoint_point_index": [index[i] for i in pick],
                                       "extras/set_distances": [table[ids[i]].numpy() for i in pick]})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        emb = model.embed(points)
        model.set_database(np.arange(4), np.stack([emb[:, index[0][ids[0] == s]].mean((0, 1)).numpy()
                                                   for s in range(4)]))
        test_points = _two_blob_shapes(8, seed=1)[0]
        keypoints = model.predict({"points": test_points})["keypoints"]          # (8, 4, 3), set-id order
    left = keypoints[..., 0] < 0
    assert left[:, [0, 2]].all() and not left[:, [1, 3]].any()


def test_training_without_the_set_distances_says_what_to_run_and_leaves_no_run_behind(tmp_path, capsys):
    data, out = tmp_path / "mugs", tmp_path / "run"
    assert main(["prepare", "synthetic", "-c", "mug", "-n", "4", "--points", "384", "--splits", "0.5,0.25,0.25",
                 "-o", str(data), "-q"]) == 0
    capsys.readouterr()
    assert main(["train", "--preset", "embed-pointnet", "--data", str(data), "--out", str(out), "--set",
                 "data.points=384", "-q"]) == 2
    err = capsys.readouterr().err
    assert "set_distances" in err and f"kptool prepare geodesics {data}" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())      # so the same command works once the data is ready
