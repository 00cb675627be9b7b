"""Re-running `kptool prepare`: what later steps added survives, clashing names, empty results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kptool.data import prepared
from kptool.data.prepare import PrepareOptions, run_prepare
from kptool.data.sources import FolderSource, Item
from kptool.errors import KptoolError


def _clouds(root, names, seed=0):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        np.savetxt(root / name, rng.normal(size=(300, 3)))
    return root


def test_rerun_of_a_finished_dataset_keeps_record_meta_and_extras(tmp_path):
    src = FolderSource(str(_clouds(tmp_path / "in", ["a.xyz", "b.xyz"])))
    out = tmp_path / "out"
    run_prepare(src, out, PrepareOptions(points=128))
    manifest = prepared.read_manifest(out)
    assert all(r["meta"]["source"].endswith(f"{r['id']}.xyz") for r in manifest["shapes"])
    # what `kptool prepare geodesics` adds: a table description and a per-shape fact
    manifest["extras"] = {"geodesic_keypoints": {"method": "heat"}}
    manifest["shapes"][0]["meta"]["unreachable"] = 3
    prepared.write_manifest(out, manifest)

    summary = run_prepare(src, out, PrepareOptions(points=128))
    assert summary.skipped == 2 and summary.prepared == 0
    again = prepared.read_manifest(out)
    assert again["extras"] == {"geodesic_keypoints": {"method": "heat"}}
    assert again["shapes"] == manifest["shapes"]


def test_same_stem_in_several_formats_gets_distinct_ids(tmp_path):
    root = _clouds(tmp_path / "in", ["x ply.xyz", "x.xyz", "x.pts"])
    ids = [it.id for it in FolderSource(str(root)).items()]
    assert len(set(ids)) == 3, ids
    summary = run_prepare(FolderSource(str(root)), tmp_path / "out", PrepareOptions(points=128))
    assert summary.prepared == 3


def test_a_source_repeating_an_id_is_refused_naming_it_and_its_files(tmp_path):
    class Twice(FolderSource):
        def items(self):
            return [Item(id="same", path="/data/one.ply"), Item(id="same", path="/data/two.ply")]

    with pytest.raises(KptoolError, match=r"'same' \(/data/one.ply and /data/two.ply\)"):
        run_prepare(Twice(str(tmp_path)), tmp_path / "out", PrepareOptions(points=128))
    assert not (tmp_path / "out").exists()


def test_nothing_prepared_is_an_error_and_leaves_no_folder(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    (root / "a.xyz").write_text("1 2\n")
    (root / "b.xyz").write_text("x y z\n")
    with pytest.raises(KptoolError, match=r"no shape could be prepared: .*a\.xyz.*\(and 1 more failures\)"):
        run_prepare(FolderSource(str(root)), tmp_path / "out", PrepareOptions(points=64))
    assert not (tmp_path / "out").exists()


def test_shape_file_keeps_its_record_meta(tmp_path):
    src = FolderSource(str(_clouds(tmp_path / "in", ["a.xyz"])))
    run_prepare(src, tmp_path / "out", PrepareOptions(points=128))
    shape, _ = prepared.load_prepared_shape(tmp_path / "out" / "shapes" / "a.npz")
    record = json.loads((tmp_path / "out" / "manifest.json").read_text())["shapes"][0]
    assert shape.meta == record["meta"] and shape.meta["normalize"] == "skeleton-merger"
