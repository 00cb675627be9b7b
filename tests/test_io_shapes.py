"""Mesh and point-cloud readers: real sample files, files generated here, and bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import trimesh

from kptool.errors import InputError, InputWarning, KptoolError
from kptool.io import SUFFIXES, load_mesh, load_points, load_shape, read_shapenet_part

CHAIR_ID = "88382b877be91b2a572f8e1c1caad99e"


def expect_error(path, problem, reader=load_shape):
    with pytest.raises(InputError) as err:
        reader(path)
    assert str(path.name) in str(err.value) and problem in str(err.value), str(err.value)


# ---------------------------------------------------------------- real files

@pytest.mark.parametrize("suffix", ["obj", "ply"])
def test_keypointnet_mesh_keeps_face_order(shared_data, suffix):
    """KeypointNet's face_index/face_uv refer to the mesh faces in file order."""
    shape = load_shape(shared_data / f"keypointnet/meshes/03001627/{CHAIR_ID}.{suffix}")
    assert shape.vertices.shape == (814, 3) and shape.faces.shape == (3304, 3)
    assert shape.faces.dtype == np.int64 and shape.vertices.dtype == np.float64
    np.testing.assert_array_equal(shape.points, shape.vertices.astype(np.float32))
    records = json.loads((shared_data / "keypointnet/annotations/chair.json").read_text())
    rec = next(r for r in records if r["model_id"] == CHAIR_ID)
    face = np.array([k["mesh_info"]["face_index"] for k in rec["keypoints"]])
    uv = np.array([k["mesh_info"]["face_uv"] for k in rec["keypoints"]])
    xyz = np.array([k["xyz"] for k in rec["keypoints"]])
    on_mesh = (uv[:, :, None] * shape.vertices[shape.faces[face]]).sum(axis=1)
    np.testing.assert_allclose(on_mesh, xyz, atol=1e-6)


def test_obj_and_ply_chair_agree(shared_data):
    obj = load_shape(shared_data / f"keypointnet/meshes/03001627/{CHAIR_ID}.obj")
    ply = load_shape(shared_data / f"keypointnet/meshes/03001627/{CHAIR_ID}.ply")
    np.testing.assert_array_equal(obj.faces, ply.faces)
    np.testing.assert_allclose(obj.vertices, ply.vertices, atol=1e-6)
    assert ply.colors.shape == (814, 3) and ply.colors[0].tolist() == [209, 179, 127]


def test_tosca_off(shared_data):
    cat = load_shape(shared_data / "tosca/cat-00.off")
    lion_vertices, lion_faces = load_mesh(shared_data / "tosca/lion-00.off")
    assert cat.vertices.shape == (7207, 3) and cat.faces.shape == (14410, 3)
    assert lion_vertices.shape == (5000, 3) and lion_faces.min() == 0 and lion_faces.max() < 5000
    np.testing.assert_allclose(cat.vertices[0], [1.3579e-02, 2.15377e-01, -1.70891e-01])
    # the ground-truth map indexes vertices, so their count and order must be the file's
    corr = np.loadtxt(shared_data / "tosca/lion2cat", dtype=np.int64)
    assert len(corr) == len(lion_vertices) and corr.max() < len(cat.vertices)


def test_shapenet_part_all_categories(shared_data):
    folders = sorted(p for p in (shared_data / "shapenet-part").iterdir() if (p / "points").is_dir())
    assert len(folders) == 16
    for folder in folders:
        pts = next((folder / "points").glob("*.pts"))
        shape = read_shapenet_part(pts)
        seg = np.loadtxt(folder / "points_label" / f"{pts.stem}.seg", dtype=np.int64)
        np.testing.assert_array_equal(shape.point_labels, seg)
        np.testing.assert_allclose(shape.points, np.loadtxt(pts), atol=1e-6)
        assert shape.category == folder.name and shape.id == pts.stem and shape.point_labels.min() >= 1


def test_shapenet_part_label_count_mismatch(shared_data, tmp_path):
    pts = next((shared_data / "shapenet-part/03001627/points").glob("*.pts"))
    seg = tmp_path / "short.seg"
    seg.write_text("1\n2\n")
    expect_error(seg, "has 2 labels for", lambda p: read_shapenet_part(pts, p))


# ---------------------------------------------------------------- generated meshes

def box(extents=(1.0, 2.0, 3.0), offset=(0.0, 0.0, 0.0)):
    return trimesh.creation.box(extents=extents, transform=trimesh.transformations.translation_matrix(offset))


@pytest.mark.parametrize("suffix", [".stl", ".glb", ".gltf", ".off", ".ply"])
def test_trimesh_formats(tmp_path, suffix):
    path = tmp_path / f"box{suffix}"
    box().export(path)
    vertices, faces = load_mesh(path)
    assert faces.shape == (12, 3)
    np.testing.assert_allclose(vertices.min(axis=0), [-0.5, -1, -1.5])
    np.testing.assert_allclose(vertices.max(axis=0), [0.5, 1, 1.5])


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_scene_flattened_with_transforms(tmp_path, suffix):
    scene = trimesh.Scene()
    scene.add_geometry(box(), node_name="a")
    scene.add_geometry(box((1, 1, 1)), node_name="b",
                       transform=trimesh.transformations.translation_matrix([10, 0, 0]))
    path = tmp_path / f"scene{suffix}"
    scene.export(path)
    shape = load_shape(path)
    assert shape.faces.shape == (24, 3)
    np.testing.assert_allclose(shape.points.max(axis=0), [10.5, 1, 1.5])


@pytest.mark.parametrize("first_line", ["OFF4 2 0", "OFF 4 2 0", "OFF\n4 2 0"])
def test_off_headers(tmp_path, first_line):
    path = tmp_path / "m.off"
    path.write_text(f"{first_line}\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n")
    vertices, faces = load_mesh(path)
    np.testing.assert_array_equal(vertices, [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(faces, [[0, 1, 2], [0, 1, 3]])


def test_obj_polygons_negative_indices_and_slashes(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text("# comment\nmtllib x.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvn 0 0 1\n"
                    "g part\nusemtl red\nf 1/1/1 2/1/1 3/1/1 4/1/1\nv 0 0 1\nf -1 1//1 2\nl 1 2\n")
    vertices, faces = load_mesh(path)
    assert vertices.shape == (5, 3)
    np.testing.assert_array_equal(faces, [[0, 1, 2], [0, 2, 3], [4, 0, 1]])


def test_obj_as_real_exporters_write_it(tmp_path):
    """CRLF, comments, groups, materials (missing .mtl), vertex colours, edges written as 'f' lines."""
    path = tmp_path / "export.obj"
    path.write_bytes(b"# Blender export\r\nmtllib missing.mtl\r\no Seat\r\n"
                     b"v 0 0 0 1.0 0.0 0.0\r\nv 1 0 0 0.0 1.0 0.0\r\nv 1 1 0 0.0 0.0 1.0\r\nv 0 1 0 1 1 1\r\n"
                     b"vt 0 0\r\ng seat\r\nusemtl wood\r\ns off\r\nf 1/1 2/1 3/1\r\nf 1 2\r\nf 3 3 4\r\n"
                     b"l 1 2 3\r\np 4\r\nf -4 -2 -1\r\n")
    with pytest.warns(InputWarning, match=r"export.obj: skipped .*: 2 'f' lines with fewer than 3 distinct"):
        shape = load_shape(path)
    np.testing.assert_array_equal(shape.faces, [[0, 1, 2], [0, 2, 3]])
    np.testing.assert_array_equal(shape.colors, [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]])


def test_obj_face_index_beyond_int64(tmp_path):
    path = tmp_path / "huge.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 99999999999999999999999\n")
    expect_error(path, "line 4: face index out of range")


def test_off_and_ply_faces_of_fewer_than_three_vertices_skipped(tmp_path):
    off = tmp_path / "edges.off"
    off.write_text("OFF\n4 3 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n3 0 1 2\n2 0 1\n3 2 2 3\n")
    with pytest.warns(InputWarning, match="2 faces with fewer than 3 distinct vertices"):
        assert load_mesh(off)[1].tolist() == [[0, 1, 2]]
    ply = tmp_path / "flat.ply"
    trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2], [0, 1, 1]], process=False).export(ply)
    with pytest.warns(InputWarning, match="1 faces with fewer than 3 distinct vertices"):
        assert load_mesh(ply)[1].tolist() == [[0, 1, 2]]


def test_real_furniture_meshes_all_load(shared_data):
    """179 artists' OBJ files (edges among faces, several parts, materials): every one reads."""
    files = sorted((shared_data / "furniture").glob("*/*/model.obj"))
    if not files:
        pytest.skip("furniture sample data not found")
    edges = [shared_data / "furniture" / name / "model.obj" for name in
             ("chair/kator-legaz-office-chair", "door/kator-legaz-exterior-door-05", "lamp/scopia-little-lamp2")]
    for f in files[::12] + edges:   # a spread over the classes, and files with edges written as 'f' lines
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InputWarning)
            shape = load_shape(f)
        assert shape.faces.shape[0] > 0 and shape.faces.max() < len(shape.vertices)


# ---------------------------------------------------------------- point clouds

def test_comma_xyz_with_comments(tmp_path):
    path = tmp_path / "c.xyz"
    path.write_text("# exported\n1.5,2,3\n\n4, 5, 6 # trailing comment\n")
    shape = load_shape(path)
    np.testing.assert_array_equal(shape.points, [[1.5, 2, 3], [4, 5, 6]])
    assert shape.normals is None and shape.colors is None


def test_text_columns_colors_then_normals(tmp_path):
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(20, 3))
    normals = rng.normal(size=(20, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    colors = rng.integers(0, 256, (20, 3))
    path = tmp_path / "c.txt"
    np.savetxt(path, np.hstack([xyz, colors, normals]), fmt="%.9g")
    shape = load_shape(path)
    np.testing.assert_allclose(shape.points, xyz, atol=1e-6)
    np.testing.assert_array_equal(shape.colors, colors)
    np.testing.assert_allclose(shape.normals, normals, atol=1e-6)
    np.savetxt(path, np.hstack([xyz, rng.normal(size=(20, 1))]))  # xyz + intensity: ignored
    assert load_shape(path).normals is None


def test_npy_and_npz(tmp_path):
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(30, 3)).astype(np.float32)
    normals = rng.normal(size=(30, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    np.save(tmp_path / "a.npy", np.hstack([xyz, normals]))
    shape = load_shape(tmp_path / "a.npy")
    np.testing.assert_array_equal(shape.points, xyz)
    np.testing.assert_allclose(shape.normals, normals, atol=1e-6)
    np.savez(tmp_path / "b.npz", points=xyz, colors=np.full((30, 3), 7, np.uint8), other=np.zeros(4))
    shape = load_shape(tmp_path / "b.npz")
    np.testing.assert_array_equal(shape.points, xyz)
    assert (shape.colors == 7).all()
    np.savez(tmp_path / "c.npz", xyz)  # a single unnamed array
    np.testing.assert_array_equal(load_shape(tmp_path / "c.npz").points, xyz)


def test_ply_point_cloud_with_normals_and_colors(tmp_path):
    path = tmp_path / "cloud.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
                    "property float nx\nproperty float ny\nproperty float nz\nproperty uchar red\n"
                    "property uchar green\nproperty uchar blue\nend_header\n"
                    "0 0 0 0 0 1 10 20 30\n1 2 3 1 0 0 40 50 60\n")
    shape = load_shape(path)
    assert not shape.has_mesh
    np.testing.assert_array_equal(shape.points, [[0, 0, 0], [1, 2, 3]])
    np.testing.assert_array_equal(shape.normals, [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(shape.colors, [[10, 20, 30], [40, 50, 60]])
    expect_error(path, "is a point cloud, not a mesh", load_mesh)


def test_load_points_drops_faces_and_up_is_recorded(tmp_path):
    path = tmp_path / "box.stl"
    box().export(path)
    points = load_points(path, up="z")
    assert points.faces is None and points.vertices is None and points.meta["up"] == "z"
    assert load_shape(path).meta["up"] is None
    with pytest.raises(KptoolError, match="unknown up axis"):
        load_shape(path, up="x")


# ---------------------------------------------------------------- bad input

def test_missing_file_and_folder(tmp_path):
    expect_error(tmp_path / "nope.ply", "no such file")
    (tmp_path / "dir.ply").mkdir()
    expect_error(tmp_path / "dir.ply", "is a folder")


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "shape.foo"
    path.write_text("1 2 3\n")
    expect_error(path, "unsupported format '.foo'")
    assert all(s in str(SUFFIXES) for s in (".ply", ".pcd", ".glb"))


@pytest.mark.parametrize("suffix, problem", [
    (".ply", "not a readable PLY file"), (".glb", "not a readable GLB file"), (".off", "not a text OFF file"),
    (".obj", "not a text OBJ file"), (".xyz", "not a text point file"), (".npy", "not a readable .npy file"),
    (".npz", "not a readable .npz file"), (".stl", "mesh has no faces"),
])
def test_garbage_bytes(tmp_path, suffix, problem):
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(bytes(range(256)) * 3)
    expect_error(path, problem)


@pytest.mark.parametrize("name, content, problem", [
    ("empty.obj", "# nothing\n", "mesh has no faces"),
    ("points_only.obj", "v 0 0 0\nv 1 0 0\n", "mesh has no faces"),
    ("empty.off", "OFF\n0 0 0\n", "mesh has no faces"),
    ("empty.xyz", "# header only\n", "contains no points"),
    ("nan.xyz", "0 0 0\nnan 1 inf\n", "2 coordinates are NaN or inf"),
    ("nan.obj", "v 0 0 0\nv 1 nan 0\nv 0 1 0\nf 1 2 3\n", "1 coordinates are NaN or inf"),
    ("range.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n", "face indices out of range"),
    ("short.obj", "v 0 0\n", "line 1: malformed OBJ 'v' line"),
    ("ragged.xyz", "0 0 0\n1 1\n", "bad point data"),
    ("words.txt", "x y z\n", "bad point data"),
    ("two.xyz", "0 0\n1 1\n", "expected an (N, 3) or wider table"),
])
def test_bad_content(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_text(content)
    expect_error(path, problem)


def test_bad_arrays(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(6))
    expect_error(tmp_path / "flat.npy", "expected an (N, 3) or wider table")
    np.save(tmp_path / "obj.npy", np.array(["a", "b", "c"]).reshape(1, 3))
    expect_error(tmp_path / "obj.npy", "table of numbers")
    np.savez(tmp_path / "two.npz", a=np.zeros((3, 3)), b=np.zeros((3, 3)))
    expect_error(tmp_path / "two.npz", "has no 'points' array (arrays: a, b)")
    np.savez(tmp_path / "normals.npz", points=np.zeros((3, 3)), normals=np.zeros((2, 3)))
    expect_error(tmp_path / "normals.npz", "normals have shape (2, 3), expected (3, 3)")
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    expect_error(tmp_path / "pickled.npy", "not a readable .npy file")


@pytest.mark.parametrize("name, export, problem", [
    ("cut.ply", {}, "not a readable PLY file"),
    ("cut_ascii.ply", {"encoding": "ascii"},
     "truncated PLY: the header declares 8 vertices and 12 faces, read 8 and 7"),
    ("cut.off", {}, "truncated OFF: the header declares 8 vertices and 12 faces"),
    ("cut.stl", {}, "mesh has no faces (empty, truncated or not an STL file)"),
    ("cut.glb", {}, "not a readable GLB file"),
])
def test_truncated_mesh(tmp_path, name, export, problem):
    path = tmp_path / name
    box().export(path, **export)
    path.write_bytes(path.read_bytes()[:-40])
    expect_error(path, problem)


def test_off_reader_matches_trimesh(shared_data):
    path = shared_data / "tosca/lion-00.off"
    reference = trimesh.load(path, process=False)
    vertices, faces = load_mesh(path)
    np.testing.assert_array_equal(vertices, reference.vertices)
    np.testing.assert_array_equal(faces, reference.faces)


def test_off_polygons_and_colours(tmp_path):
    path = tmp_path / "quad.off"
    path.write_text("COFF\n# a comment\n4 1 0\n0 0 0 255 0 0 255\n1 0 0 255 0 0 255\n1 1 0 255 0 0 255\n"
                    "0 1 0 255 0 0 255\n4 0 1 2 3 10 20 30\n")
    vertices, faces = load_mesh(path)
    assert vertices.shape == (4, 3)
    np.testing.assert_array_equal(faces, [[0, 1, 2], [0, 2, 3]])


def test_io_does_not_import_the_data_layer():
    """kptool.data builds on kptool.io (readers, atomic writes); the reverse would be a cycle."""
    import subprocess
    import sys

    code = ("import sys, kptool.io, kptool.io.predictions, kptool.io.writers; "
            "print(sorted(m for m in sys.modules if m.startswith('kptool.data')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
