"""Class labels on prepared shapes: pooled built-in categories, class folders, the furniture set."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import trimesh

from kptool.cli.main import main
from kptool.data.class_sources import ClassFolderSource, FurnitureSource, SyntheticSetSource, parse_categories
from kptool.data.sources import SyntheticSource
from kptool.data.prepare import PrepareOptions, run_prepare
from kptool.data.prepared import PreparedDataset
from kptool.errors import InputError, KptoolError

SMALL = PrepareOptions(points=64, oversample=2)


def test_parse_categories():
    assert parse_categories("all") == ["chair", "table", "airplane", "mug", "figure"]
    assert parse_categories("mug, chair") == ["mug", "chair"]
    with pytest.raises(KptoolError, match="'sofa'"):
        parse_categories("chair,sofa")
    with pytest.raises(KptoolError, match="twice"):
        parse_categories("chair,chair")


def test_synthetic_set_pools_and_labels_categories(tmp_path):
    out = tmp_path / "set"
    run_prepare(SyntheticSetSource(("mug", "table"), 3, seed=0), out, SMALL)
    ds = PreparedDataset(out)
    assert [(s.id, s.category) for s in ds] == [(f"{c}-00000{i}", c) for c in ("mug", "table") for i in range(3)]
    assert [r["category"] for r in ds.manifest["shapes"]] == ["mug"] * 3 + ["table"] * 3
    # the same shape as in a one-category set of the same seed
    run_prepare(SyntheticSetSource(("table",), 2, seed=0), tmp_path / "one", SMALL)
    np.testing.assert_array_equal(PreparedDataset(tmp_path / "one")[1].points, ds[4].points)


def test_pooled_categories_are_split_alike(tmp_path):
    from kptool.data.sources import assign_splits

    items = SyntheticSetSource(("mug", "table", "chair"), 4).items()
    splits = assign_splits(items, (0.5, 0.25, 0.25), seed=0)
    for c in ("mug", "table", "chair"):
        assert Counter(splits[f"{c}-00000{i}"] for i in range(4)) == {"train": 2, "val": 1, "test": 1}
    # unlabelled items: one shuffle over all of them, as before
    plain = SyntheticSource("mug", 10).items()
    assert Counter(assign_splits(plain, (0.8, 0.1, 0.1), 0).values()) == {"train": 8, "val": 1, "test": 1}


def test_category_survives_a_resumed_run(tmp_path):
    out = tmp_path / "set"
    source = SyntheticSetSource(("mug", "chair"), 2)
    run_prepare(source, out, SMALL)
    (out / "manifest.json").unlink()               # as if interrupted before the manifest
    summary = run_prepare(source, out, SMALL)
    assert summary.skipped == 4
    assert [r["category"] for r in PreparedDataset(out).manifest["shapes"]] == ["mug", "mug", "chair", "chair"]


def _box(path: Path, size: tuple[float, float, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    trimesh.creation.box(extents=size).export(path)


def test_class_folders_label_by_subfolder_and_split_by_split_folder(tmp_path):
    root = tmp_path / "in"
    _box(root / "flat" / "train" / "a.ply", (2, 0.1, 1))
    _box(root / "flat" / "test" / "b.ply", (2, 0.2, 1))
    _box(root / "tall" / "c.obj", (0.2, 2, 0.2))
    _box(root / "tall" / "deep" / "d.stl", (0.3, 2, 0.3))
    run_prepare(ClassFolderSource(str(root)), tmp_path / "out", SMALL)
    recs = {r["id"]: r for r in PreparedDataset(tmp_path / "out").manifest["shapes"]}
    assert {i: r["category"] for i, r in recs.items()} == {
        "flat__train__a": "flat", "flat__test__b": "flat", "tall__c": "tall", "tall__deep__d": "tall"}
    assert recs["flat__train__a"]["split"] == "train" and recs["flat__test__b"]["split"] == "test"
    only_tall = ClassFolderSource(str(root), category="TALL").items()
    assert {it.extra["class"] for it in only_tall} == {"tall"}


def test_class_folders_refuse_a_file_outside_any_class(tmp_path):
    _box(tmp_path / "loose.ply", (1, 1, 1))
    with pytest.raises(InputError, match="not inside a class subfolder"):
        ClassFolderSource(str(tmp_path)).items()


def _catalog(root: Path, rows: list[dict[str, str]]) -> None:
    with (root / "catalog.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "category", "split", "file", "creator", "license"])
        w.writeheader()
        w.writerows(rows)


def test_furniture_layout_and_bad_catalogs(tmp_path):
    _box(tmp_path / "bed" / "b1" / "model.obj", (2, 0.5, 1.5))
    _catalog(tmp_path, [{"id": "b1", "category": "bed", "split": "test", "file": "bed/b1/model.obj",
                         "creator": "Someone", "license": "CC-BY-3.0"}])
    run_prepare(FurnitureSource(str(tmp_path)), tmp_path / "out", SMALL)
    rec = PreparedDataset(tmp_path / "out").manifest["shapes"][0]
    assert (rec["category"], rec["split"], rec["meta"]["creator"], rec["meta"]["license"]) == \
        ("bed", "test", "Someone", "CC-BY-3.0")
    _catalog(tmp_path, [{"id": "x", "category": "bed", "split": "holdout", "file": "bed/b1/model.obj"}])
    with pytest.raises(InputError, match="line 2: split 'holdout'"):
        FurnitureSource(str(tmp_path)).items()
    _catalog(tmp_path, [{"id": "x", "category": "bed", "split": "train", "file": "../../etc/passwd"}])
    with pytest.raises(InputError, match="outside"):
        FurnitureSource(str(tmp_path)).items()


def test_furniture_real_catalog(shared_data, tmp_path):
    root = shared_data / "furniture"
    items = FurnitureSource(str(root)).items()
    counts = Counter((it.extra["class"], it.split) for it in items)
    assert len(items) == 179 and len({c for c, _ in counts}) == 10
    assert counts[("chair", "train")] == 24 and counts[("chair", "test")] == 8   # README: chair 24/8
    out = tmp_path / "bottles"
    assert main(["prepare", "furniture", "--root", str(root), "-c", "bottle", "--points", "128", "-o", str(out),
                 "-q"]) == 0
    ds = PreparedDataset(out)
    assert len(ds) == 8 and {s.category for s in ds} == {"bottle"}
    assert Counter(r["split"] for r in ds.manifest["shapes"]) == {"train": 6, "test": 2}


def test_cli_synthetic_all_and_bad_category(tmp_path, capsys):
    assert main(["prepare", "synthetic", "-c", "all", "-n", "1", "--points", "64", "-o", str(tmp_path / "a"),
                 "--json"]) == 0
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert sorted(r["category"] for r in manifest["shapes"]) == ["airplane", "chair", "figure", "mug", "table"]
    capsys.readouterr()
    assert main(["prepare", "synthetic", "-c", "chair,sofa", "-n", "1", "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "'sofa'" in err
