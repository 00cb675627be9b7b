"""Rendering speed and fidelity: kptool's rasteriser against the installed candidates,
and the soft silhouette rasteriser's speed and agreement with the hard silhouette.

    python benchmarks/render.py [--repeats N] [--size 256] [--furniture PATH/model.obj]

Section 1 renders the same mesh from the same cameras (256 x 256, 90 degree field
of view) with every candidate that is installed and works here; a candidate that is
missing or fails (no GL driver, no LLVM) is listed with the reason, never faked.
What each produces differs (kptool: RGB with materials + silhouette + depth + normals;
ray casters: first hit per pixel, i.e. silhouette and depth, before any shading), so
the column "what" says it; "agree" is the silhouette IoU with kptool's raster.

Section 2: the soft rasteriser's forward + backward time (camera parameters
requiring grad) at 64 x 64 and 128 x 128 on a 5,120-face icosphere-like mesh (a
subdivided sphere squashed into a chair-sized box), and its IoU with the hard
silhouette (threshold 0.5) as sigma shrinks.

Timings are medians over repeats after one warm-up call; the machine may be shared,
so compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
import trimesh

from kptool.data.synthetic import generate_shape, shape_seed
from kptool.render import Camera, from_arrays, load_textured, rasterize, render_views
from kptool.render.refine import silhouette_iou
from kptool.render.soft import soft_silhouette


def cameras(mesh, n: int, size: int) -> list[Camera]:
    rng = np.random.default_rng(0)
    return [Camera(rng.uniform(0, 2 * math.pi), math.acos(rng.uniform(-1, 1)), 2.08 * mesh.size,
                   tuple(mesh.centre), math.pi / 2, size) for _ in range(n)]


def timed(fn, repeats: int) -> tuple[float, object]:
    out = fn()                                       # warm-up (numba compile / GL context)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def ray_directions(cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    R, _ = cam.extrinsics()
    K = cam.intrinsics()
    v, u = np.mgrid[0:cam.size, 0:cam.size]
    d = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones(u.shape)], -1).reshape(-1, 3) @ R
    return np.repeat(cam.eye()[None], len(d), 0), d


def candidate_kptool(mesh, cams):
    def run():
        views = render_views(mesh, cams)
        return [v.silhouette for v in views]
    return "RGB+sil+depth+normals", run


def candidate_kptool_raster(mesh, cams):
    return "face ids+depth", lambda: [rasterize(mesh.vertices, mesh.faces, c).mask for c in cams]


def _ray_candidate(mesh, cams, intersector):
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    caster = intersector(tm)
    rays = [ray_directions(c) for c in cams]

    def run():
        return [(caster.intersects_first(o, d) >= 0).reshape(c.size, c.size) for (o, d), c in zip(rays, cams)]
    return "first hit (sil+depth)", run


def candidate_embree(mesh, cams):
    from trimesh.ray import has_embree

    if not has_embree:
        raise RuntimeError("embreex not installed")
    from trimesh.ray import ray_pyembree

    return _ray_candidate(mesh, cams, ray_pyembree.RayMeshIntersector)


def candidate_trimesh_rays(mesh, cams):
    from trimesh.ray import ray_triangle

    return _ray_candidate(mesh, cams[:1], ray_triangle.RayMeshIntersector)


def candidate_pyrender(mesh, cams):
    import os

    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    import pyrender

    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    scene = pyrender.Scene(ambient_light=[0.3, 0.3, 0.3])
    scene.add(pyrender.Mesh.from_trimesh(tm, smooth=False))
    size = cams[0].size
    renderer = pyrender.OffscreenRenderer(size, size)
    cam_node = scene.add(pyrender.PerspectiveCamera(yfov=cams[0].fov, aspectRatio=1.0, znear=0.01))
    scene.add(pyrender.DirectionalLight(intensity=3.0), parent_node=cam_node)
    flip = np.diag([1.0, -1.0, -1.0])                # OpenCV camera -> OpenGL camera

    def run():
        masks = []
        for c in cams:
            R, _ = c.extrinsics()
            pose = np.eye(4)
            pose[:3, :3] = R.T @ flip
            pose[:3, 3] = c.eye()
            scene.set_pose(cam_node, pose)
            _, depth = renderer.render(scene)
            masks.append(depth > 0)
        return masks
    return "RGB+depth (GL, EGL)", run


def candidate_mitsuba(mesh, cams):
    import mitsuba as mi

    # scalar_rgb: the llvm_* variants need a newer system LLVM than Debian 12's (LLVM 15 aborts
    # the whole process with "LLVM ERROR: Cannot select" here), which no wheel provides.
    variant = "scalar_rgb"
    mi.set_variant(variant)
    import tempfile

    ply = tempfile.NamedTemporaryFile(suffix=".ply", delete=False).name
    trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).export(ply)
    m = {"type": "ply", "filename": ply, "face_normals": True}
    size = cams[0].size

    def scene_for(c):
        up = -c.extrinsics()[0][1]
        return mi.load_dict({"type": "scene", "integrator": {"type": "direct"},
                             "emitter": {"type": "constant"}, "shape": m,
                             "sensor": {"type": "perspective", "fov": math.degrees(c.fov),
                                        "to_world": mi.ScalarTransform4f().look_at(
                                            origin=c.eye().tolist(), target=list(c.target), up=up.tolist()),
                                        "film": {"type": "hdrfilm", "width": size, "height": size, "pixel_format": "rgba"},
                                        "sampler": {"type": "independent", "sample_count": 4}}})
    scenes = [scene_for(c) for c in cams]

    def run():
        return [np.asarray(mi.render(s))[..., 3] > 0.5 for s in scenes]      # alpha = coverage
    return f"RGB, 4 spp ({variant})", run


CANDIDATES = {"kptool (numba raster + shading)": candidate_kptool, "kptool raster only": candidate_kptool_raster,
              "trimesh + embreex rays": candidate_embree, "trimesh plain rays (1 view)": candidate_trimesh_rays,
              "pyrender (EGL)": candidate_pyrender, "mitsuba 3": candidate_mitsuba}


def bench_renderers(meshes: dict, repeats: int, size: int, views: int) -> None:
    print(f"## Renderers: {size} x {size}, {views} views per mesh, median of {repeats}")
    print("| mesh | candidate | what | images/s | silhouette IoU vs kptool |")
    print("|---|---|---|---|---|")
    for name, mesh in meshes.items():
        cams = cameras(mesh, views, size)
        reference = [rasterize(mesh.vertices, mesh.faces, c).mask for c in cams]
        for label, make in CANDIDATES.items():
            try:
                what, run = make(mesh, cams)
                seconds, masks = timed(run, repeats)
            except Exception as e:  # a candidate that cannot run here is reported, not faked
                print(f"| {name} | {label} | unavailable | - | {e.__class__.__name__}: {str(e)[:80]} |")
                continue
            iou = statistics.mean(silhouette_iou(m, r) for m, r in zip(masks, reference))
            print(f"| {name} | {label} | {what} | {len(masks) / seconds:.1f} | {iou:.4f} |")


def sphere_mesh():
    m = trimesh.creation.icosphere(subdivisions=4)
    m.apply_scale([0.6, 1.0, 0.55])
    return from_arrays(m.vertices, m.faces)


def bench_soft(repeats: int) -> None:
    mesh = sphere_mesh()
    print(f"\n## Soft rasteriser: {len(mesh.faces)} faces, forward + backward, median of {repeats} "
          f"(torch threads: {torch.get_num_threads()})")
    print("| device | size | sigma | ms / (forward + backward) |")
    print("|---|---|---|---|")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for size in (64, 128):
            cam = cameras(mesh, 1, size)[0]
            verts = torch.tensor(mesh.vertices, dtype=torch.float32, device=device)
            faces = torch.tensor(mesh.faces, device=device)
            for sigma in (1.0, 0.1):
                def step():
                    p = [torch.tensor(x, dtype=torch.float32, device=device, requires_grad=True)
                         for x in (cam.azimuth, cam.elevation, cam.distance)]
                    sil = soft_silhouette(verts, faces, *p, torch.tensor(cam.target, dtype=torch.float32,
                                                                          device=device), cam.fov, size, sigma)
                    sil.mean().backward()
                    if device == "cuda":
                        torch.cuda.synchronize()
                seconds, _ = timed(step, repeats)
                print(f"| {device} | {size} | {sigma} | {1000 * seconds:.1f} |")
    print("\n## Soft vs hard silhouette (IoU at threshold 0.5; 128 x 128, 10 views, 5,120-face mesh and a "
          "built-in chair)")
    print("| sigma (px^2) | IoU sphere | IoU chair |")
    print("|---|---|---|")
    chair = generate_shape("chair", shape_seed(0, 0))
    meshes = [mesh, from_arrays(chair.vertices, chair.faces)]
    for sigma in (4.0, 1.0, 0.1, 0.01, 1e-3, 1e-4):
        row = []
        for m in meshes:
            ious = []
            for cam in cameras(m, 10, 128):
                sil, _ = soft_silhouette(torch.tensor(m.vertices), torch.tensor(m.faces),
                                         *[torch.tensor(x, dtype=torch.float64) for x in
                                           (cam.azimuth, cam.elevation, cam.distance)],
                                         torch.tensor(cam.target), cam.fov, 128, sigma), None
                ious.append(silhouette_iou(sil.numpy() > 0.5, rasterize(m.vertices, m.faces, cam).mask))
            row.append(statistics.mean(ious))
        print(f"| {sigma:g} | {row[0]:.4f} | {row[1]:.4f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--views", type=int, default=10)
    ap.add_argument("--furniture", default="../shared/data/furniture/chair/blend-swap-cc-0-chair/model.obj")
    ap.add_argument("--skip-soft", action="store_true")
    ap.add_argument("--skip-renderers", action="store_true")
    args = ap.parse_args()
    chair = generate_shape("chair", shape_seed(0, 0))
    meshes = {f"built-in chair ({len(chair.faces)} faces)": from_arrays(chair.vertices, chair.faces, chair.face_labels)}
    try:
        textured = load_textured(args.furniture)
        meshes[f"furniture chair, textured ({len(textured.faces)} faces)"] = textured
    except Exception as e:
        print(f"(furniture mesh skipped: {e})")
    if not args.skip_renderers:
        bench_renderers(meshes, args.repeats, args.size, args.views)
    if not args.skip_soft:
        bench_soft(args.repeats)


if __name__ == "__main__":
    main()
