"""`kptool prepare combine` (several prepared sets as one) and `kptool prepare modelnet` with class labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kptool.cli.main import main
from kptool.data.prepared import PreparedDataset


def run(capsys, *args) -> str:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def fails(capsys, *args) -> str:
    """The one error line of a command that must exit 2."""
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    """A pooled built-in set (mug, table: train/val/test) and a one-category set (chair: train/test)."""
    root = tmp_path_factory.mktemp("sets")
    assert main(["prepare", "synthetic", "-c", "mug,table", "-n", "6", "--points", "128", "--splits", "0.5,0.25,0.25",
                 "-o", str(root / "pooled"), "-q"]) == 0
    assert main(["prepare", "synthetic", "-c", "chair", "-n", "4", "--points", "128", "--splits", "0.5,0,0.5",
                 "-o", str(root / "chairs"), "-q"]) == 0
    return root


def test_combine_keeps_every_shape_split_and_label(two_sets, tmp_path, capsys):
    a, b, out = two_sets / "pooled", two_sets / "chairs", tmp_path / "both"
    summary = json.loads(run(capsys, "prepare", "combine", a, b, "--out", out, "--json"))
    assert summary["classes"] == ["chair", "mug", "table"]
    pa, pb, pc = PreparedDataset(a), PreparedDataset(b), PreparedDataset(out)
    assert pc.ids == pa.ids + pb.ids and pc.class_names == ["chair", "mug", "table"]
    split_of = {r["id"]: r["split"] for r in pa.records + pb.records}
    assert {r["id"]: r["split"] for r in pc.records} == split_of
    assert summary["counts"] == {s: list(split_of.values()).count(s) for s in ("train", "val", "test")}
    # the chair set's records have their label from its manifest category: written out in the combined set
    for source in (pa, pb):
        for i, sid in enumerate(source.ids):
            shape, original = pc[pc.index_of(sid)], source[i]
            assert shape.category == original.category and shape.meta["original_id"] == sid
            np.testing.assert_array_equal(shape.points, original.points)
            np.testing.assert_array_equal(shape.keypoints, original.keypoints)
            np.testing.assert_allclose(shape.meta["transform"].matrix, original.meta["transform"].matrix)
    assert pc.class_index(pc.index_of(pb.ids[0])) == 0
    # the same command again is fine (redone); other inputs need --force
    run(capsys, "prepare", "combine", a, b, "--out", out, "-q")
    assert "--force" in fails(capsys, "prepare", "combine", b, a, "--out", out, "-q")
    run(capsys, "prepare", "combine", b, a, "--out", out, "--force", "-q")
    assert PreparedDataset(out).ids == pb.ids + pa.ids


def test_combine_refuses_clashing_ids_frames_and_points(two_sets, tmp_path, capsys):
    a = two_sets / "pooled"
    assert main(["prepare", "synthetic", "-c", "mug", "-n", "3", "--points", "128", "--seed", "5",
                 "-o", str(tmp_path / "again"), "-q"]) == 0
    err = fails(capsys, "prepare", "combine", a, tmp_path / "again", "--out", tmp_path / "x")
    assert "'mug-000000'" in err and "--prefix" in err and not (tmp_path / "x").exists()
    run(capsys, "prepare", "combine", a, tmp_path / "again", "--out", tmp_path / "x", "--prefix", "-q")
    ids = PreparedDataset(tmp_path / "x").ids
    assert "pooled-mug-000000" in ids and "again-mug-000000" in ids and len(set(ids)) == len(ids)

    assert main(["prepare", "synthetic", "-c", "chair", "-n", "2", "--points", "64", "-o", str(tmp_path / "p64"),
                 "-q"]) == 0
    assert "--points" in fails(capsys, "prepare", "combine", a, tmp_path / "p64", "--out", tmp_path / "y")
    assert main(["prepare", "synthetic", "-c", "chair", "-n", "2", "--points", "128", "--normalize", "unit-sphere",
                 "-o", str(tmp_path / "sphere"), "-q"]) == 0
    assert "frame" in fails(capsys, "prepare", "combine", a, tmp_path / "sphere", "--out", tmp_path / "y")
    assert "twice" in fails(capsys, "prepare", "combine", a, a, "--out", tmp_path / "y")
    assert "new folder" in fails(capsys, "prepare", "combine", a, tmp_path / "again", "--out", a)
    assert not (tmp_path / "y").exists()


def test_pretraining_on_a_combined_set_validates_with_the_svm_probe(two_sets, tmp_path, capsys):
    both = tmp_path / "both"
    run(capsys, "prepare", "combine", two_sets / "pooled", two_sets / "chairs", "--out", both, "-q")
    run(capsys, "train", "-p", "parae-pointnet", "--data", both, "--out", tmp_path / "pre", "--epochs", "2",
        "--set", "train.val_every=1", "--set", "model.loss.partitions=4", "--set", "data.points=128",
        "--set", "model.backbone.input_transform=false", "--batch-size", "4", "-q")
    log = [json.loads(line) for line in (tmp_path / "pre" / "log.jsonl").read_text().splitlines()]
    # the probe runs on the combined set's validation split (mug and table shapes) at every validation
    assert all(0 <= r["val"]["svm_cv_accuracy"] <= 1 for r in log) and len(log) == 2


def _off(path: Path, extents, broken_header: bool) -> None:
    import trimesh

    m = trimesh.creation.box(extents=extents)
    head = f"OFF{len(m.vertices)} {len(m.faces)} 0\n" if broken_header else f"OFF\n{len(m.vertices)} {len(m.faces)} 0\n"
    body = "".join(f"{x} {y} {z}\n" for x, y, z in m.vertices) + "".join(f"3 {a} {b} {c}\n" for a, b, c in m.faces)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + body)


def test_modelnet_table1_protocol_on_a_tiny_off_tree(tmp_path, capsys):
    """The docs' ModelNet40 commands on a fabricated ModelNet tree: class folders, official train/test, z-up."""
    root = tmp_path / "ModelNet40"
    rng = np.random.default_rng(0)
    shapes = {"pole": (0.3, 0.3, 3.0), "plate": (3.0, 2.0, 0.2)}   # z-up: a pole stands, a plate lies
    for cls, extents in shapes.items():
        for i in range(1, 7):
            split = "train" if i <= 4 else "test"
            _off(root / cls / split / f"{cls}_{i:04d}.off", np.array(extents) * rng.uniform(0.8, 1.2, 3), i == 1)
    data = tmp_path / "mn"
    run(capsys, "prepare", "modelnet", "--root", root, "--points", "128", "--out", data, "-q")
    ds = PreparedDataset(data)
    assert ds.class_names == ["plate", "pole"] and ds.manifest["frame"]["source_up"] == "z"
    assert {r["id"]: (r["category"], r["split"]) for r in ds.records}["pole_0005"] == ("pole", "test")
    pole = ds[ds.index_of("pole_0001")]
    assert np.argmax(np.ptp(pole.points, axis=0)) == 1          # z-up became y-up: the pole stands along y
    info = json.loads(run(capsys, "info", data, "--json"))
    assert info["classes"] == {"plate": 6, "pole": 6} and info["counts"]["test"] == 4

    run(capsys, "features", data, "--preset", "parae-pointnet", "--out", tmp_path / "f.npz", "-q")
    report = json.loads(run(capsys, "eval", "svm", tmp_path / "f.npz", "--no-tsne", "--json"))
    assert report["train_size"] == 8 and report["test_size"] == 4
    assert report["accuracy"] == 1.0          # a standing pole and a lying plate: any feature separates them
