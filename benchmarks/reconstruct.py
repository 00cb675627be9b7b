"""Seconds per image of single-view reconstruction, per stage (sketch, voxels, mesh + samples).

    python benchmarks/reconstruct.py [--sketch RUN --voxels RUN] [--images 16] [--batch 1] [--repeats 3]

The images are random pixels (the networks' cost does not depend on them; without runs the
networks are untrained presets); the mesh stage depends on the occupancy, so a voxelised
built-in chair stands in for a prediction. Also times ``trimesh``'s own
``VoxelGrid.marching_cubes`` on the same grid as a reference for the mesh stage. Medians over
repeats after a warm-up; the machine may be shared, so compare rows of one run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from kptool.data.synthetic import generate_shape, shape_seed
from kptool.models.reconstruction import SketchEstimator, VoxelEstimator
from kptool.reconstruct import Reconstructor, load_reconstructor, surface_samples, voxelise, voxels_to_mesh


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sketch", help="sketch-resnet18 run folder or checkpoint")
    parser.add_argument("--voxels", help="voxels-from-sketch run folder or checkpoint")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int, default=64, help="input image size")
    parser.add_argument("--resolution", type=int, default=32, help="voxel resolution (untrained models)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.sketch and args.voxels:
        rec = load_reconstructor(args.sketch, args.voxels, device=args.device, batch_size=args.batch)
    else:
        rec = Reconstructor(SketchEstimator(), VoxelEstimator(resolution=args.resolution), torch.device(args.device),
                            batch_size=args.batch)
    images = torch.rand(args.images, 3, args.size, args.size)
    networks = median_time(lambda: rec.predict(images), args.repeats)
    rec.seconds = dict.fromkeys(rec.seconds, 0.0)
    rec.predict(images)
    share = {k: v / max(sum(rec.seconds.values()), 1e-12) for k, v in rec.seconds.items() if k != "mesh"}

    shape = generate_shape("chair", shape_seed(0, 0))
    grid = voxelise(shape.vertices, shape.faces, rec.resolution).astype(np.float32)
    import trimesh

    mesh_time = median_time(lambda: voxels_to_mesh(grid), args.repeats)
    mesh = voxels_to_mesh(grid)
    sample_time = median_time(lambda: surface_samples(mesh, rec.samples), args.repeats)
    trimesh_time = median_time(lambda: trimesh.voxel.VoxelGrid(grid > 0.5).marching_cubes, args.repeats)
    per = networks / args.images
    print(f"device {args.device}, {torch.get_num_threads()} torch threads, batch {args.batch}, "
          f"{args.size} x {args.size} images, {rec.resolution}^3 voxels")
    print(f"{'stage':<32}{'s / image':>12}")
    for stage in ("sketch", "voxels"):
        print(f"{stage:<32}{per * share[stage]:>12.4f}")
    print(f"{'marching cubes (voxels_to_mesh)':<32}{mesh_time:>12.4f}   ({mesh_time / max(trimesh_time, 1e-12):.2f} x "
          f"trimesh's VoxelGrid.marching_cubes: {trimesh_time:.4f}; ours pads, rescales and merges vertices)")
    print(f"{f'{rec.samples} surface samples':<32}{sample_time:>12.4f}")
    print(f"{'total':<32}{per + mesh_time + sample_time:>12.4f}")


if __name__ == "__main__":
    main()
