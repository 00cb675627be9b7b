"""Accuracy and speed of kptool's geodesic methods against exact geodesics (pygeodesic).

On the TOSCA meshes of the shared sample data, for a few random source vertices:
mean relative error against exact mesh geodesics and milliseconds per source, for

- ``mesh heat``: kptool's batched heat method on the mesh, by default on its
  intrinsic Delaunay refinement with at most 50% more vertices (the one-time
  refinement and factorisations are reported separately from the per-source cost);
- ``heat refine=3``: the same with a budget of 3x the vertex count (more accurate, slower);
- ``heat unrefined``: the reference discretisation, the intrinsic Delaunay
  triangulation of the input vertices (``mesh_geodesics(..., refine=False)``, as
  potpourri3d's robust solver);
- ``cloud heat`` / ``cloud graph``: the point-cloud heat method and Dijkstra on the
  20-NN graph, both on the mesh's vertices alone.

Relative error: the mean, over every (source, vertex) pair whose exact distance is
more than 1% of the bounding-box diagonal (about one edge length: the source and its
nearest ring are left out, where relative error is undefined or meaningless), of
``|d - exact| / exact``. Per-source times come from one call with all sources but the
first (the first call builds the solver), repeated ``--repeats`` times with the methods
interleaved (so a busy machine slows them alike), median reported; "amortised" adds the
one-time setup spread over K = 20 sources (a typical number of keypoints).

Checks: mesh heat error < 2% and >= 100x faster per source than exact.

    python benchmarks/geodesic.py [--data DIR] [--sources 5] [--seed 0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import trimesh

from kptool.geodesic import cloud_geodesics, mesh_geodesics

MESHES = ("cat-00.off", "lion-00.off")
K = 20   # sources over which the setup is amortised


def timed(methods, sources, repeats):
    """For each of ``methods`` (label -> distance function): distances from ``sources[1:]``, the time
    of a first one-source call (it builds and caches the solver) minus the per-source time, and the
    median per-source time of ``repeats`` calls with all the others, interleaved across methods."""
    first, each, dist = {}, {label: [] for label in methods}, {}
    for label, distances in methods.items():
        t = time.perf_counter()
        distances(sources[:1])
        first[label] = time.perf_counter() - t
    for _ in range(repeats):
        for label, distances in methods.items():
            t = time.perf_counter()
            dist[label] = distances(sources[1:])
            each[label].append((time.perf_counter() - t) / (len(sources) - 1))
    each = {label: float(np.median(times)) for label, times in each.items()}
    # A method without setup (exact) can time its first call a little under the median: not below 0.
    return {label: (dist[label], max(0.0, first[label] - each[label]), each[label]) for label in methods}


def relative_error(d, exact, eps):
    keep = np.isfinite(exact) & (exact > eps)
    return float(np.mean(np.abs(d[keep] - exact[keep]) / exact[keep]))


def main() -> int:
    default = os.environ.get("KPTOOL_TEST_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=default, help="the shared sample-data folder (holds tosca/)")
    ap.add_argument("--sources", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per method (median reported)")
    args = ap.parse_args()
    folder = Path(args.data) / "tosca"
    if not folder.is_dir():
        print(f"skipped: no TOSCA meshes at {folder} (pass --data or set KPTOOL_TEST_DATA)")
        return 0
    rng = np.random.default_rng(args.seed)
    ok = True
    print(f"{args.sources} random source vertices per mesh (seed {args.seed}), median of {args.repeats} "
          f"interleaved runs; relative error = mean |d - exact| / exact over pairs with exact > 1% of the "
          f"bounding-box diagonal; amortised = (setup + {K} x per-source) / {K}")
    header = (f"{'mesh':<12}{'V':>7} {'method':<15}{'setup ms':>10}{'ms/source':>11}{'speed-up':>10}"
              f"{'amortised':>11}{'speed-up':>10}{'rel. error':>12}")
    print(header)
    print("-" * len(header))
    for name in MESHES:
        mesh = trimesh.load(folder / name, process=False)
        v, f = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)
        src = rng.choice(len(v), args.sources + 1, replace=False)   # +1: the first call also builds
        eps = 0.01 * float(np.linalg.norm(v.max(0) - v.min(0)))
        results = timed({"exact": lambda s: mesh_geodesics(v, f, s, method="exact"),
                         "mesh heat": lambda s: mesh_geodesics(v, f, s, method="heat"),
                         "heat refine=3": lambda s: mesh_geodesics(v, f, s, method="heat", refine=3.0),
                         "heat unrefined": lambda s: mesh_geodesics(v, f, s, method="heat", refine=False),
                         "cloud heat": lambda s: cloud_geodesics(v, s, method="heat"),
                         "cloud graph": lambda s: cloud_geodesics(v, s, method="graph")}, src, args.repeats)
        exact, _, exact_each = results["exact"]
        rows = [(label, setup, each, relative_error(d, exact, eps)) for label, (d, setup, each) in results.items()]
        exact_amortised = (rows[0][1] + K * exact_each) / K
        for label, setup, each, err in rows:
            amortised = (setup + K * each) / K
            print(f"{name:<12}{len(v):>7} {label:<15}{1e3 * setup:>10.1f}{1e3 * each:>11.2f}{exact_each / each:>9.0f}x"
                  f"{1e3 * amortised:>11.2f}{exact_amortised / amortised:>9.0f}x{100 * err:>11.2f}%")
        heat_err, heat_each = rows[1][3], rows[1][2]
        passed_err, passed_speed = heat_err < 0.02, exact_each / heat_each >= 100
        ok &= passed_err and passed_speed
        print(f"{name}: mesh heat error {100 * heat_err:.2f}% < 2%: {'PASS' if passed_err else 'FAIL'}; "
              f"{exact_each / heat_each:.0f}x faster per source >= 100x: {'PASS' if passed_speed else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
