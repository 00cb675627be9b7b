"""Hard renderer, cameras, materials and `kptool render` datasets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import trimesh

from kptool.cli.main import main
from kptool.data.prepare import PrepareOptions, run_prepare
from kptool.data.sources import SyntheticSource
from kptool.render import Camera, from_arrays, load_textured, rasterize, render_views
from kptool.render.camera import project_np
from kptool.render.materials import sample_texture
from kptool.render.views import keypoint_visibility


def test_camera_follows_the_reference_look_at_by_hand():
    cam = Camera(azimuth=0.0, elevation=math.pi / 2, distance=2.0, size=65)   # eye at +z, 90 degree fov
    np.testing.assert_allclose(cam.eye(), [0, 0, 2], atol=1e-12)
    R, t = cam.extrinsics()
    np.testing.assert_allclose(R, [[1, 0, 0], [0, -1, 0], [0, 0, -1]], atol=1e-12)
    f = 32.5                                       # (65 / 2) / tan(45 deg)
    uvz = project_np(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]]), cam)
    np.testing.assert_allclose(uvz, [[32, 32, 2], [32 + f / 2, 32, 2], [32, 32 - f / 2, 2]], atol=1e-9)
    # azimuth 90 deg puts the eye on +x; elevation 0 looks straight down from +y (right stays (cos az, 0, -sin az))
    np.testing.assert_allclose(Camera(math.pi / 2, math.pi / 2, 3.0).eye(), [3, 0, 0], atol=1e-12)
    R0, _ = Camera(0.0, 0.0, 1.0).extrinsics()
    np.testing.assert_allclose(R0, [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-12)
    np.testing.assert_allclose(cam.intrinsics(), [[f, 0, 32], [0, f, 32], [0, 0, 1]])


def _rays(cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    R, _ = cam.extrinsics()
    K = cam.intrinsics()
    v, u = np.mgrid[0:cam.size, 0:cam.size]
    d_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u, dtype=float)], -1)
    d = d_cam.reshape(-1, 3) @ R
    return np.repeat(cam.eye()[None], len(d), 0), d


@pytest.mark.parametrize("az,el", [(0.3, 1.1), (2.5, 2.0), (4.0, 0.4)])
def test_rasteriser_matches_ray_casting_at_pixel_centres(az, el):
    mesh = trimesh.creation.annulus(r_min=0.3, r_max=1.0, height=0.8, sections=24)   # holes and self-occlusion
    cam = Camera(az, el, 2.6, size=40)
    frags = rasterize(mesh.vertices, mesh.faces, cam)
    origins, dirs = _rays(cam)
    hit_tri = trimesh.ray.ray_triangle.RayMeshIntersector(mesh).intersects_first(origins, dirs)
    hit = hit_tri.reshape(cam.size, cam.size) >= 0
    assert (hit != frags.mask).sum() <= 2                           # only pixel centres on an edge may differ
    assert hit.sum() > 100
    locations, rays, _ = trimesh.ray.ray_triangle.RayMeshIntersector(mesh).intersects_location(
        origins, dirs, multiple_hits=True)
    R, t = cam.extrinsics()
    z = (locations @ R.T + t)[:, 2]
    nearest = np.full(len(origins), np.inf)
    np.minimum.at(nearest, rays, z)
    both = frags.mask.ravel() & np.isfinite(nearest)
    np.testing.assert_allclose(frags.depth.ravel()[both], nearest[both], rtol=1e-5)


def test_keypoint_visibility_by_depth_test():
    box = trimesh.creation.box(extents=(1, 1, 1))
    mesh = from_arrays(box.vertices, box.faces)
    cam = Camera(0.0, math.pi / 2, 3.0, size=64)                      # looking at the +z face
    kps = np.array([[0, 0, 0.5], [0, 0, -0.5], [0.5, 0.2, 0.1], [0, 0, 5.0]])   # front, back, side edge, behind eye
    (view,) = render_views(mesh, [cam], kps)
    assert view.keypoint_visible.tolist() == [True, False, True, False]
    np.testing.assert_allclose(view.keypoint_depth[:2], [2.5, 3.5], atol=1e-6)
    assert view.silhouette.sum() > 0 and view.rgb[0, 0].tolist() == [255, 255, 255]
    # normals face the camera: the +z face seen from +z is -z in the camera frame
    np.testing.assert_allclose(view.normals[32, 32], [0, 0, -1], atol=1e-6)
    depth = np.full((5, 5), np.inf, np.float32)
    assert keypoint_visibility(np.array([[2.0, 2.0, 1.0], [-3.0, 2.0, 1.0]]), depth, 0.01).tolist() == [True, False]


def test_texture_lookup_by_hand():
    image = np.array([[[1, 0, 0], [0, 1, 0]], [[0, 0, 1], [1, 1, 1]]], dtype=np.float32)   # row 0 is v = 1
    uv = np.array([[0.25, 0.75], [0.75, 0.75], [0.25, 0.25], [0.75, 0.25], [1.25, 0.75], [0.5, 0.75]])
    np.testing.assert_allclose(sample_texture(image, uv),
                               [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [1, 0, 0], [0.5, 0.5, 0]], atol=1e-6)


def test_furniture_materials_and_textures_are_rendered(shared_data):
    path = shared_data / "furniture" / "chair" / "blend-swap-cc-0-chair" / "model.obj"
    if not path.is_file():
        pytest.skip(f"{path} not in the sample data")
    mesh = load_textured(path)
    assert mesh.colour_source == "materials" and mesh.textures and (mesh.face_texture >= 0).any()
    cam = Camera(0.5, 1.3, 2.08 * mesh.size, tuple(mesh.centre), size=96)
    (view,) = render_views(mesh, [cam])
    seen = view.rgb[view.silhouette]
    assert len(seen) > 500 and len(np.unique(seen, axis=0)) > 50        # texture detail, not flat colour


@pytest.fixture(scope="module")
def chairs(tmp_path_factory):
    out = tmp_path_factory.mktemp("render") / "chairs"
    run_prepare(SyntheticSource("chair", 2, 0), out, PrepareOptions(points=256))
    return out


def _cli(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_render_cli_writes_a_resumable_dataset(chairs, tmp_path, capsys):
    out = tmp_path / "renders"
    args = ["render", chairs, "--views", 3, "--size", 48, "--out", out, "--background", "random", "--json"]
    code, stdout, err = _cli(args, capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["rendered"] == 2 and summary["images"] == 6 and not summary["failed"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "kptool-renders" and manifest["counts"]["images"] == 6
    rec = manifest["shapes"][0]
    assert rec["colour_source"] == "parts" and rec["views"] == 3 and rec["num_keypoints"] > 0
    z = np.load(out / rec["file"])
    assert z["silhouette"].shape == (3, 48, 48) and z["normals"].shape == (3, 48, 48, 3)
    assert (out / "rgb" / rec["id"] / "02.png").is_file()
    # the stored cameras reproduce the stored 2D keypoints, and visible ones sit on the depth map
    cam = np.einsum("vij,kj->vki", z["R"], z["keypoints"]) + z["t"][:, None]
    uv = np.einsum("ij,vkj->vki", z["K"], cam)
    np.testing.assert_allclose(uv[..., :2] / uv[..., 2:], z["keypoints_2d"], atol=1e-3)
    assert z["keypoint_visible"].any() and not z["keypoint_visible"].all()
    v, k = np.argwhere(z["keypoint_visible"])[0]
    u_px, v_px = np.rint(z["keypoints_2d"][v, k]).astype(int)
    window = z["depth"][v, max(v_px - 1, 0):v_px + 2, max(u_px - 1, 0):u_px + 2]
    assert window.max() >= z["keypoint_depth"][v, k] - 0.1
    # a second run resumes; other arguments are refused; the same seed gives the same cameras
    code, stdout, _ = _cli(args, capsys)
    assert code == 0 and json.loads(stdout)["skipped"] == 2
    (out / manifest["shapes"][1]["file"]).unlink()                # as if interrupted before the last shape
    (out / "manifest.json").unlink()
    code, stdout, _ = _cli(args, capsys)
    assert code == 0 and json.loads(stdout)["skipped"] == 1 and json.loads(stdout)["rendered"] == 1
    assert json.loads((out / "manifest.json").read_text())["shapes"] == manifest["shapes"]
    code, _, err = _cli(["render", chairs, "--views", 4, "--size", 48, "--out", out], capsys)
    assert code == 2 and "other arguments" in err
    again = tmp_path / "again"
    assert _cli(args[:-4] + [again, "--background", "random", "-q"], capsys)[0] == 0
    np.testing.assert_array_equal(np.load(again / rec["file"])["azimuth"], z["azimuth"])


def test_render_cli_rejects_bad_options(chairs, tmp_path, capsys):
    code, _, err = _cli(["render", chairs, "--out", tmp_path / "r", "--elevation", "100,20"], capsys)
    assert code == 2 and "--elevation" in err
    code, _, err = _cli(["render", tmp_path / "missing", "--out", tmp_path / "r2"], capsys)
    assert code == 2 and "error:" in err


def _write_red_cube(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cube.mtl").write_text("newmtl red\nKd 0.9 0.1 0.1\n")
    box = trimesh.creation.box(extents=(1.0, 0.6, 0.8))
    lines = ["mtllib cube.mtl", "usemtl red"] + [f"v {x} {y} {z}" for x, y, z in box.vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in box.faces]
    (folder / "cube.obj").write_text("\n".join(lines) + "\n")


def test_prepared_datasets_keep_the_mesh_path_and_renders_use_its_materials(tmp_path, capsys):
    _write_red_cube(tmp_path / "meshes")
    np.savetxt(tmp_path / "meshes" / "cloud.xyz", np.random.default_rng(0).uniform(-1, 1, (300, 3)))
    data = tmp_path / "data"
    assert _cli(["prepare", "folder", "--root", tmp_path / "meshes", "--out", data, "--points", 64, "-q"],
                capsys)[0] == 0
    manifest = json.loads((data / "manifest.json").read_text())
    by_id = {r["id"]: r for r in manifest["shapes"]}
    assert by_id["cube"]["meta"]["mesh"] == str((tmp_path / "meshes" / "cube.obj").resolve())
    assert "mesh" not in by_id["cloud"].get("meta", {})
    out = tmp_path / "renders"
    code, stdout, err = _cli(["render", data, "--views", 2, "--size", 32, "--out", out, "--json"], capsys)
    assert code == 3, err   # finished, but a shape failed (as every folder command)
    summary = json.loads(stdout)
    assert [f["id"] for f in summary["failed"]] == ["cloud"] and "no mesh" in summary["failed"][0]["error"]
    rec = json.loads((out / "manifest.json").read_text())["shapes"][0]
    assert rec["colour_source"] == "materials"
    from PIL import Image

    rgb = np.asarray(Image.open(out / "rgb" / "cube" / "00.png")).astype(int)
    seen = rgb[np.load(out / rec["file"])["silhouette"][0]]
    assert (seen[:, 0] > seen[:, 1] + 40).all()                     # red material, shaded
    # a dataset prepared before meta.mesh existed: meta.source (the same file) is used
    for r in manifest["shapes"]:
        r.get("meta", {}).pop("mesh", None)
    (data / "manifest.json").write_text(json.dumps(manifest))
    old = tmp_path / "old"
    assert _cli(["render", data, "--views", 1, "--size", 32, "--out", old, "-q"], capsys)[0] == 3  # "cloud" fails
    assert json.loads((old / "manifest.json").read_text())["shapes"][0]["colour_source"] == "materials"


def test_keypointnet_keypoints_land_on_the_rendered_chair(shared_data, tmp_path):
    from kptool.data.sources import KeypointNetSource
    from kptool.render.dataset import RenderOptions, read_views, run_render

    root = shared_data / "keypointnet"
    if not (root / "meshes" / "03001627").is_dir():
        pytest.skip(f"{root}/meshes/03001627 not in the sample data")
    data = tmp_path / "kpn"
    run_prepare(KeypointNetSource(str(root), "chair"), data, PrepareOptions(points=2048))
    summary = run_render(data, tmp_path / "renders", RenderOptions())
    assert summary.rendered == 1 and summary.images == 20
    z = read_views(tmp_path / "renders", "88382b877be91b2a572f8e1c1caad99e")
    visible = z["keypoint_visible"]
    assert 0.3 < visible.mean() < 0.95                  # some keypoints are hidden in most views
    hits = []
    for v, k in np.argwhere(visible):
        u, w = np.rint(z["keypoints_2d"][v, k]).astype(int)
        hits.append(z["silhouette"][v, max(w - 1, 0):w + 2, max(u - 1, 0):u + 2].any())
    assert np.mean(hits) > 0.97                         # annotated keypoints sit on the surface
