"""kptool prepare: real sample data, built-in data, resume, failures and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kptool.cli.main import main
from kptool.data import prepared
from kptool.data.prepare import PrepareOptions, run_prepare
from kptool.data.prepared import PreparedDataset, collate_shapes
from kptool.data.sources import FolderSource, KeypointNetSource, ShapeNetPartSource, SyntheticSource
from kptool.errors import InputError, KptoolError, OutputError
from kptool.failures import EXIT_SOME_FAILED


@pytest.mark.parametrize("category", ["airplane", "chair"])
def test_keypointnet_keypoints_land_on_their_points_and_map_back(shared_data, tmp_path, category):
    from kptool.io import read_keypointnet_annotations

    out = tmp_path / category
    summary = run_prepare(KeypointNetSource(str(shared_data / "keypointnet"), category), out, PrepareOptions())
    assert not summary.failed
    ann = read_keypointnet_annotations(shared_data / "keypointnet" / "annotations" / f"{category}.json")
    ds = PreparedDataset(out)
    assert len(ds) == len(list((shared_data / "keypointnet" / "pcds" / ds.manifest["source"]["synset"]).glob("*.pcd")))
    for shape in ds:
        a = ann[shape.id]
        # exactly on pcd[point_index] after the transform ...
        np.testing.assert_array_equal(shape.keypoints, shape.points[shape.keypoint_point_index])
        np.testing.assert_array_equal(shape.keypoint_point_index, a.point_index)
        # ... and back to the annotation's xyz through the stored transform
        np.testing.assert_allclose(shape.meta["transform"].apply_inverse(shape.keypoints), a.keypoints, atol=1e-5)
        np.testing.assert_array_equal(shape.keypoint_ids, a.semantic_ids)
        assert shape.points.min() == pytest.approx(-1, abs=1e-6) and shape.points.max() == pytest.approx(1, abs=1e-6)
    # official splits are used
    official = {l.strip() for l in (shared_data / "keypointnet/splits/test.txt").read_text().split()}
    for rec in ds.manifest["shapes"]:
        key = f"{ds.manifest['source']['synset']}-{rec['id']}"
        if key in official:
            assert rec["split"] == "test"


def test_keypointnet_mesh_is_carried_in_the_same_frame(shared_data, tmp_path):
    run_prepare(KeypointNetSource(str(shared_data / "keypointnet"), "03001627"), tmp_path / "c", PrepareOptions())
    shape = PreparedDataset(tmp_path / "c")[0]
    assert shape.has_mesh
    from scipy.spatial import cKDTree
    import trimesh

    mesh = trimesh.Trimesh(shape.vertices, shape.faces, process=False)
    _, dist, _ = trimesh.proximity.closest_point(mesh, shape.points[:200])
    assert np.median(dist) < 0.02   # cloud sampled from this mesh, same frame


def test_shapenet_part_labels_follow_points(shared_data, tmp_path):
    from kptool.io import read_shapenet_part

    root = shared_data / "shapenet-part"
    run_prepare(ShapeNetPartSource(str(root), "chair"), tmp_path / "p", PrepareOptions(points=1024))
    shape = PreparedDataset(tmp_path / "p")[0]
    raw = read_shapenet_part(next((root / "03001627/points").glob("*.pts")),
                             next((root / "03001627/points_label").glob("*.seg")))
    assert shape.points.shape == (1024, 3) and shape.point_labels.shape == (1024,)
    # every prepared point is a raw point with the same label
    back = shape.meta["transform"].apply_inverse(shape.points.astype(np.float64))
    from scipy.spatial import cKDTree

    d, idx = cKDTree(raw.points).query(back)
    assert d.max() < 1e-5
    np.testing.assert_array_equal(raw.point_labels[idx], shape.point_labels)
    assert PreparedDataset(tmp_path / "p").manifest["shapes"][0]["split"] == "train"   # official list


def test_folder_of_tosca_meshes(shared_data, tmp_path):
    summary = run_prepare(FolderSource(str(shared_data / "tosca")), tmp_path / "t", PrepareOptions())
    ds = PreparedDataset(tmp_path / "t")
    assert {"cat-00", "lion-00"} <= set(ds.ids)
    assert all(s.has_mesh and s.points.shape == (2048, 3) for s in ds)
    # landmarks.txt is a two-column index table, not a cloud: listed as a failure, not fatal
    assert [f["id"] for f in summary.failed] == ["landmarks"]


def test_synthetic_parallel_and_torch_dataset(tmp_path):
    summary = run_prepare(SyntheticSource("chair", 6, seed=3), tmp_path / "s", PrepareOptions(points=512), workers=2)
    assert summary.prepared == 6 and not summary.failed
    ds = PreparedDataset(tmp_path / "s")
    assert sum(summary.counts.values()) == 6
    shape = ds[0]
    assert shape.has_mesh and shape.keypoints is not None and shape.point_labels is not None
    # keypoints stay on the (transformed) mesh surface
    import trimesh

    mesh = trimesh.Trimesh(shape.vertices, shape.faces, process=False)
    _, dist, _ = trimesh.proximity.closest_point(mesh, shape.keypoints)
    assert dist.max() < 1e-4
    # normals: unit length, and those of the faces the points were sampled from
    np.testing.assert_allclose(np.linalg.norm(shape.normals, axis=1), 1, atol=1e-5)
    _, _, face = trimesh.proximity.closest_point(mesh, shape.points[:100])
    assert np.median(np.abs(np.sum(shape.normals[:100] * mesh.face_normals[face], axis=1))) > 0.99
    fields = ("points", "keypoints", "keypoint_ids", "point_labels", "normals", "class_label")
    batch = collate_shapes([ds.torch_dataset(fields)[i] for i in range(3)])
    assert tuple(batch["points"].shape) == (3, 512, 3) and tuple(batch["point_labels"].shape) == (3, 512)
    assert tuple(batch["normals"].shape) == (3, 512, 3) and batch["class_label"].tolist() == [0, 0, 0]
    # annotations stay per shape (their counts vary), exactly as stored
    assert len(batch["keypoints"]) == 3
    for i in range(3):
        np.testing.assert_array_equal(batch["keypoints"][i].numpy(), ds[i].keypoints)
        np.testing.assert_array_equal(batch["keypoint_ids"][i].numpy(), ds[i].keypoint_ids)
    assert set(ds.torch_dataset(("points",))[0]) == {"index", "id", "points"}    # only what is asked for
    # same seed -> the same dataset, whatever the worker count
    run_prepare(SyntheticSource("chair", 6, seed=3), tmp_path / "s1", PrepareOptions(points=512), workers=1)
    for a, b in zip(PreparedDataset(tmp_path / "s"), PreparedDataset(tmp_path / "s1")):
        np.testing.assert_array_equal(a.points, b.points)


def _interrupt_after(n):
    def progress(done, total, status):
        if done >= n:
            raise KeyboardInterrupt

    return progress


def test_resume_after_interruption(tmp_path):
    out = tmp_path / "r"
    src = SyntheticSource("mug", 5, seed=1)
    opts = PrepareOptions(points=256)
    with pytest.raises(KeyboardInterrupt):
        run_prepare(src, out, opts, progress=_interrupt_after(2))
    assert not (out / prepared.MANIFEST).exists()       # incomplete datasets have no manifest
    with pytest.raises(InputError, match="interrupted"):
        PreparedDataset(out)
    done_before = sorted(p.name for p in (out / "shapes").iterdir())
    assert len(done_before) == 2 and all(p.endswith(".npz") for p in done_before)   # no temp files left
    # a half-written file from a hard kill is redone
    (out / "shapes" / done_before[1]).write_bytes(b"PK\x03\x04 truncated")
    summary = run_prepare(src, out, opts)
    assert summary.skipped == 1 and summary.prepared == 4
    assert len(PreparedDataset(out)) == 5
    # running a finished command again redoes nothing
    assert run_prepare(src, out, opts).skipped == 5


def test_failures_are_listed_and_strict_stops(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    rng = np.random.default_rng(0)
    np.save(root / "good.npy", rng.normal(size=(300, 3)))
    bad = rng.normal(size=(300, 3))
    bad[5, 1] = np.nan
    np.save(root / "nan.npy", bad)
    np.save(root / "few.npy", rng.normal(size=(10, 3)))
    (root / "garbage.ply").write_bytes(b"\x00\x01not a ply at all")
    (root / "empty.obj").write_text("# nothing\n")
    summary = run_prepare(FolderSource(str(root)), tmp_path / "o", PrepareOptions(points=256))
    failed = {f["id"]: f["error"] for f in summary.failed}
    assert set(failed) == {"nan", "few", "garbage", "empty"}
    assert "NaN" in failed["nan"] and "fewer than" in failed["few"]
    assert all(f["source"] in f["error"] or Path(f["source"]).name in f["error"] for f in summary.failed)
    assert json.loads((tmp_path / "o" / "failures.json").read_text()) == summary.failed
    assert PreparedDataset(tmp_path / "o").ids == ["good"]
    with pytest.raises(KptoolError, match="nan.npy|few.npy|garbage.ply|empty.obj"):
        run_prepare(FolderSource(str(root)), tmp_path / "o2", PrepareOptions(points=256), strict=True)
    # on the command line: the run finishes and says that something failed (README "Errors")
    assert main(["prepare", "folder", "--root", str(root), "--out", str(tmp_path / "o3"), "--points", "256",
                 "-q"]) == EXIT_SOME_FAILED == 3
    assert len(json.loads((tmp_path / "o3" / "failures.json").read_text())) == 4


def test_output_folder_protection(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(OutputError, match="not a kptool dataset"):
        run_prepare(SyntheticSource("mug", 2), foreign, PrepareOptions(points=128))
    assert (foreign / "thesis.tex").read_text() == "precious"
    out = tmp_path / "o"
    run_prepare(SyntheticSource("mug", 2), out, PrepareOptions(points=128))
    with pytest.raises(OutputError, match="other arguments"):
        run_prepare(SyntheticSource("mug", 2), out, PrepareOptions(points=256))
    run_prepare(SyntheticSource("mug", 2), out, PrepareOptions(points=256), force=True)
    assert PreparedDataset(out)[0].points.shape == (256, 3)


@pytest.mark.parametrize("args, needle", [
    (["prepare", "keypointnet", "--root", "/no/such/dir", "--category", "chair"], "/no/such/dir"),
    (["prepare", "folder", "--root", "{tmp}/notalayout"], "no shape files"),
    (["prepare", "keypointnet", "--root", "{tmp}/notalayout", "--category", "chair"], "annotations/chair.json"),
    (["prepare", "synthetic", "--category", "sofa", "--count", "2"], "unknown built-in category"),
    (["info", "{tmp}/notalayout"], "not a prepared dataset"),
])
def test_cli_bad_input_is_one_line_without_traceback(tmp_path, capsys, args, needle):
    (tmp_path / "notalayout").mkdir()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if argv[0] == "prepare":
        argv += ["--out", str(tmp_path / "out"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_cli_prepare_and_info_json(tmp_path, capsys):
    assert main(["prepare", "synthetic", "--category", "table", "--count", "3", "--points", "256",
                 "--out", str(tmp_path / "t"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["prepared"] == 3
    assert main(["info", str(tmp_path / "t"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["counts"]["total"] == 3 and info["frame"]["normalize"] == "skeleton-merger"
    assert info["keypoints_per_shape"]["min"] >= 8


def _box_off(path: Path, broken_header: bool) -> None:
    import trimesh

    m = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    head = f"OFF{len(m.vertices)} {len(m.faces)} 0\n" if broken_header else f"OFF\n{len(m.vertices)} {len(m.faces)} 0\n"
    body = "".join(f"{x} {y} {z}\n" for x, y, z in m.vertices) + "".join(f"3 {a} {b} {c}\n" for a, b, c in m.faces)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + body)


def test_modelnet_layout_official_splits_and_z_up(tmp_path):
    from kptool.data.sources import ModelNetSource

    root = tmp_path / "ModelNet10"
    _box_off(root / "chair" / "train" / "chair_0001.off", broken_header=True)   # ModelNet's broken header
    _box_off(root / "chair" / "test" / "chair_0002.off", broken_header=False)
    _box_off(root / "desk" / "train" / "desk_0001.off", broken_header=False)
    summary = run_prepare(ModelNetSource(str(root)), tmp_path / "mn", PrepareOptions(points=256, up="z"))
    assert not summary.failed
    ds = PreparedDataset(tmp_path / "mn")
    splits = {r["id"]: r["split"] for r in ds.manifest["shapes"]}
    assert splits == {"chair_0001": "train", "chair_0002": "test", "desk_0001": "train"}
    shape = ds[ds.index_of("chair_0001")]
    # the box's z extent (3) becomes the prepared y extent: z-up was rotated to y-up
    ext = np.ptp(shape.points, axis=0)
    assert np.argmax(ext) == 1
    np.testing.assert_allclose(np.ptp(shape.meta["transform"].apply_inverse(shape.points.astype(float)), axis=0),
                               [1, 2, 3], atol=0.05)
    assert ds.manifest["frame"]["source_up"] == "z"
    only = run_prepare(ModelNetSource(str(root), "desk"), tmp_path / "desk", PrepareOptions(points=256))
    assert only.prepared == 1


def test_shapenet_core_layout_with_synset_id(tmp_path):
    import trimesh

    from kptool.data.sources import ShapeNetSource

    root = tmp_path / "ShapeNetCore.v2"
    for i, model in enumerate(["aaa", "bbb"]):
        path = root / "03001627" / model / "models" / "model_normalized.obj"
        path.parent.mkdir(parents=True)
        trimesh.creation.box(extents=(1.0, 1.0 + i, 1.0)).export(path)
    (root / "03001627" / "ccc").mkdir()                    # a model folder without a mesh is ignored
    summary = run_prepare(ShapeNetSource(str(root), "03001627"), tmp_path / "sn", PrepareOptions(points=128))
    ds = PreparedDataset(tmp_path / "sn")
    assert summary.prepared == 2 and sorted(ds.ids) == ["aaa", "bbb"] and ds.category == "chair"
    with pytest.raises(InputError, match="no 02691156/ folder"):
        run_prepare(ShapeNetSource(str(root), "airplane"), tmp_path / "x", PrepareOptions(points=128))


def test_outputs_get_normal_file_permissions(tmp_path):
    import os
    import stat

    from kptool.io.atomic import write_text

    old = os.umask(0o022)
    try:
        path = write_text(tmp_path / "x.txt", "hello")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def _sphere_off(path: Path, subdivisions: int) -> None:
    import trimesh

    path.parent.mkdir(parents=True, exist_ok=True)
    trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0).export(path)


def test_modelnet_points_from_vertices_or_surface(tmp_path, capsys):
    """The authors' ModelNet clouds are the .off vertices; kptool's default samples the surface; the choice is
    recorded, and a mesh with too few vertices is listed as failed."""
    root = tmp_path / "ModelNet10"
    _sphere_off(root / "chair" / "train" / "chair_0001.off", 3)     # 642 vertices, all on the unit sphere
    _sphere_off(root / "chair" / "test" / "chair_0002.off", 1)      # 42 vertices: too few for 128 points
    out = tmp_path / "v"
    code = main(["prepare", "modelnet", "--root", str(root), "-c", "chair", "--points-from", "vertices",
                 "--points", "128", "--normalize", "none", "--out", str(out), "--quiet"])
    assert code != 0 and "chair_0002" in (out / "failures.json").read_text()
    ds = PreparedDataset(out)
    assert ds.manifest["source"]["points_from"] == "vertices"
    shape = ds[ds.index_of("chair_0001")]
    import trimesh

    verts = shape.meta["transform"].apply(trimesh.creation.icosphere(subdivisions=3).vertices)
    from scipy.spatial import cKDTree

    # every prepared point is one of the (z-up -> y-up rotated) vertices
    assert cKDTree(verts).query(shape.points)[0].max() < 1e-5
    surf = tmp_path / "s"
    assert main(["prepare", "modelnet", "--root", str(root), "-c", "chair", "--points", "128", "--normalize",
                 "none", "--out", str(surf), "--quiet"]) == 0     # the surface has points enough
    ds = PreparedDataset(surf)
    assert ds.manifest["source"]["points_from"] == "surface"
    shape = ds[ds.index_of("chair_0001")]
    assert cKDTree(verts).query(shape.points)[0].max() > 1e-3     # samples inside the faces, not the vertices
    assert main(["prepare", "modelnet", "--root", str(root), "--points-from", "faces", "--out",
                 str(tmp_path / "x"), "--quiet"]) == 2
    assert "--points-from" in capsys.readouterr().err
