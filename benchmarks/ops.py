"""Speed and memory of kptool.ops against the peers installed in this environment.

    python benchmarks/ops.py [--repeats N] [--quick]

Each case runs kptool and every installed peer on identical inputs in one
process, interleaving the implementations within every repeat so that machine
load hits all of them alike, and prints the median time, the ratio
kptool / fastest peer and PASS when that ratio is at most 1.0. A peer that is
not installed is listed as skipped with the reason, never faked. Peers get
their inputs in their own format, prepared outside the timed region; kptool
gets torch tensors. The first (warm-up) call is not timed; kptool's is reported,
since it includes loading (or, on a fresh machine, compiling) the numba kernels.

Threads: torch and numba use all cores; peers are given all cores where they
have a knob (cKDTree ``workers=-1``, point-cloud-utils ``num_threads=-1``).

The memory section runs each op on two 20,000-point clouds in a fresh
subprocess and reports its peak resident memory above the inputs, next to the
1.6 GB that one full 20,000 x 20,000 float32 distance matrix would take.
"""

from __future__ import annotations

import os

# Idle OpenMP threads (torch's, Open3D's) spin by default; on a shared machine with
# more runnable threads than cores every parallel torch op then waits out a
# scheduler slice (25 ms for a 50,000-element sum measured here). Sleeping idle
# threads remove that noise for every implementation alike. Set before torch loads;
# an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import importlib  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from kptool.ops import chamfer_distance, farthest_point_sampling, knn  # noqa: E402
from kptool.ops.neighbors import knn_torch  # noqa: E402


def optional(module: str):
    """The module, or the reason it cannot be used."""
    try:
        return importlib.import_module(module)
    except Exception as err:  # a broken install is as unusable as a missing one
        return f"{type(err).__name__}: {err}".splitlines()[0]


o3d = optional("open3d")
pcu = optional("point_cloud_utils")
fpsample = optional("fpsample")
ckdtree = optional("scipy.spatial")
pytorch3d_ops = optional("pytorch3d.ops")
torch_cluster = optional("torch_cluster")
faiss = optional("faiss")
KEOPS_SKIPPED = "not installed: source-only on PyPI, compiles C++ kernels with the system compiler at run time"


def available(mod) -> bool:
    return not isinstance(mod, str)


# ------------------------------------------------------------------ peers

def torch_loop_fps(xyz: torch.Tensor, k: int) -> torch.Tensor:
    """The pure-PyTorch FPS found in PointNet++ ports: one vectorised step per sample."""
    B, N, _ = xyz.shape
    out = torch.zeros(B, k, dtype=torch.long)
    distance = torch.full((B, N), 1e10)
    farthest = torch.zeros(B, dtype=torch.long)
    rows = torch.arange(B)
    for i in range(k):
        out[:, i] = farthest
        d = ((xyz - xyz[rows, farthest][:, None]) ** 2).sum(-1)
        distance = torch.minimum(distance, d)
        farthest = distance.argmax(-1)
    return out


def o3d_clouds(x: np.ndarray):
    return [o3d.geometry.PointCloud(o3d.utility.Vector3dVector(c.astype(np.float64))) for c in x]


def fps_peers(x: torch.Tensor, k: int) -> dict:
    xn = x.numpy()
    peers = {}
    if available(o3d):
        clouds = o3d_clouds(xn)
        peers["open3d farthest_point_down_sample"] = lambda: [c.farthest_point_down_sample(k, 0) for c in clouds]
    else:
        peers["open3d"] = o3d
    if available(fpsample):
        peers["fpsample fps_sampling"] = lambda: [fpsample.fps_sampling(c, k, start_idx=0) for c in xn]
        peers["fpsample bucket_fps_kdtree"] = (
            lambda: [fpsample.bucket_fps_kdtree_sampling(c, k, start_idx=0) for c in xn])
        for h in (3, 5, 7, 9):
            peers[f"fpsample bucket_fps_kdline h={h}"] = (
                lambda h=h: [fpsample.bucket_fps_kdline_sampling(c, k, h, start_idx=0) for c in xn])
    else:
        peers["fpsample"] = fpsample
    peers["pure-PyTorch loop"] = lambda: torch_loop_fps(x, k)
    if available(pytorch3d_ops):
        peers["pytorch3d sample_farthest_points"] = lambda: pytorch3d_ops.sample_farthest_points(x, K=k)
    else:
        peers["pytorch3d"] = pytorch3d_ops
    if available(torch_cluster):
        flat = x.reshape(-1, 3)
        batch = torch.arange(x.shape[0]).repeat_interleave(x.shape[1])
        peers["torch_cluster fps"] = lambda: torch_cluster.fps(flat, batch, ratio=k / x.shape[1], random_start=False)
    else:
        peers["torch_cluster"] = torch_cluster
    return peers


def knn_peers(x: torch.Tensor, k: int) -> dict:
    xn = x.numpy()
    peers = {}
    peers["scipy cKDTree (workers=-1)"] = lambda: [ckdtree.cKDTree(c).query(c, k, workers=-1) for c in xn]
    if available(pcu):
        peers["point-cloud-utils k_nearest_neighbors"] = lambda: [pcu.k_nearest_neighbors(c, c, k) for c in xn]
    else:
        peers["point-cloud-utils"] = pcu
    if available(o3d):
        tensors = [o3d.core.Tensor(c) for c in xn]

        def o3d_knn():
            for t in tensors:
                nns = o3d.core.nns.NearestNeighborSearch(t)
                nns.knn_index()
                nns.knn_search(t, k)
        peers["open3d core.nns knn_search"] = o3d_knn
    else:
        peers["open3d"] = o3d
    peers["torch.cdist + topk"] = lambda: torch.cdist(x, x).topk(k, dim=-1, largest=False)
    if available(pytorch3d_ops):
        peers["pytorch3d knn_points"] = lambda: pytorch3d_ops.knn_points(x, x, K=k)
    else:
        peers["pytorch3d"] = pytorch3d_ops
    if available(torch_cluster):
        flat = x.reshape(-1, 3)
        batch = torch.arange(x.shape[0]).repeat_interleave(x.shape[1])
        peers["torch_cluster knn"] = lambda: torch_cluster.knn(flat, flat, k, batch, batch)
    else:
        peers["torch_cluster"] = torch_cluster
    return peers


def knn_feature_peers(x: torch.Tensor, k: int) -> dict:
    """kNN in feature space (DGCNN's EdgeConv graph), ``x (B, N, D)`` self-query."""
    peers = {"torch.cdist + topk": lambda: torch.cdist(x, x).topk(k, dim=-1, largest=False)}
    if available(faiss):
        faiss.omp_set_num_threads(torch.get_num_threads())
        xn = [np.ascontiguousarray(c) for c in x.numpy()]

        def faiss_knn():  # exact search: one flat L2 index per cloud
            for c in xn:
                index = faiss.IndexFlatL2(c.shape[1])
                index.add(c)
                index.search(c, k)
        peers["faiss IndexFlatL2 (exact)"] = faiss_knn
    else:
        peers["faiss"] = faiss
    peers["pykeops"] = KEOPS_SKIPPED
    return peers


def kdtree_gather_chamfer(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Chamfer with cKDTree nearest neighbours and a differentiable torch gather."""
    xd, yd = x.detach().numpy(), y.detach().numpy()
    ix = torch.from_numpy(np.stack([ckdtree.cKDTree(b).query(a, 1, workers=-1)[1] for a, b in zip(xd, yd)]))
    iy = torch.from_numpy(np.stack([ckdtree.cKDTree(a).query(b, 1, workers=-1)[1] for a, b in zip(xd, yd)]))
    rows = torch.arange(x.shape[0])[:, None]
    dx = (x - y[rows, ix]).square().sum(-1)
    dy = (y - x[rows, iy]).square().sum(-1)
    return (dx.mean(1) + dy.mean(1)).mean()


def cdist_chamfer(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(x, y).square()
    return (d.min(2).values.mean(1) + d.min(1).values.mean(1)).mean()


def chamfer_peers(x: torch.Tensor, y: torch.Tensor, backward: bool) -> dict:
    peers = {}
    if backward:
        xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()
        peers["cKDTree indices + torch gather"] = lambda: kdtree_gather_chamfer(xg, yg).backward()
        peers["torch.cdist"] = lambda: cdist_chamfer(xg, yg).backward()
        if available(pytorch3d_ops):
            from pytorch3d.loss import chamfer_distance as p3d_chamfer
            peers["pytorch3d chamfer_distance"] = lambda: p3d_chamfer(xg, yg)[0].backward()
        else:
            peers["pytorch3d"] = pytorch3d_ops
        return peers
    xn, yn = x.numpy(), y.numpy()
    if available(pcu):
        peers["point-cloud-utils chamfer_distance"] = lambda: [pcu.chamfer_distance(a, b) for a, b in zip(xn, yn)]
    else:
        peers["point-cloud-utils"] = pcu
    if available(o3d):
        cx, cy = o3d_clouds(xn), o3d_clouds(yn)

        def o3d_chamfer():
            for a, b in zip(cx, cy):
                np.asarray(a.compute_point_cloud_distance(b)).mean()
                np.asarray(b.compute_point_cloud_distance(a)).mean()
        peers["open3d compute_point_cloud_distance x2"] = o3d_chamfer
    else:
        peers["open3d"] = o3d
    with torch.no_grad():
        peers["cKDTree indices + torch gather"] = lambda: kdtree_gather_chamfer(x, y)
        peers["torch.cdist"] = lambda: cdist_chamfer(x, y)
    if available(pytorch3d_ops):
        from pytorch3d.loss import chamfer_distance as p3d_chamfer
        peers["pytorch3d chamfer_distance"] = lambda: p3d_chamfer(x, y)
    else:
        peers["pytorch3d"] = pytorch3d_ops
    return peers


# ------------------------------------------------------------------ timing

def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def run_case(title: str, ours, peers: dict, repeats: int) -> bool:
    runnable = {name: fn for name, fn in peers.items() if callable(fn)}
    first_call = timed(ours)
    for fn in runnable.values():
        fn()
    times = {name: [] for name in ["kptool", *runnable]}
    for _ in range(repeats):
        times["kptool"].append(timed(ours))
        for name, fn in runnable.items():
            times[name].append(timed(fn))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"\n== {title}  (median of {repeats}; kptool first call {first_call:.1f} ms)")
    for name, med in sorted(medians.items(), key=lambda kv: kv[1]):
        print(f"  {name:<42} {med:10.2f} ms")
    for name, reason in peers.items():
        if not callable(reason):
            print(f"  {name:<42}    skipped ({reason})")
    if not runnable:
        print("  no peer installed: nothing to compare")
        return True
    fastest = min(runnable, key=medians.get)
    ratio = medians["kptool"] / medians[fastest]
    verdict = "PASS" if ratio <= 1.0 else "FAIL"
    print(f"  ratio kptool / fastest peer ({fastest}): {ratio:.2f}  {verdict}")
    return ratio <= 1.0


def check_fps_exact(x: torch.Tensor, k: int) -> None:
    """Do the FPS peers pick the same points as kptool (start index 0)?

    fpsample's plain FPS does. Its bucket variants do not start at ``start_idx``
    (seen with fpsample 1.0.2), so their sequences differ from the first sample
    on; Open3D returns its samples sorted by index, so only the set is compared.
    """
    ours = farthest_point_sampling(x, k)
    if available(fpsample):
        for name in ("fps_sampling", "bucket_fps_kdline_sampling"):
            args = (7,) if "kdline" in name else ()
            same = all(np.array_equal(getattr(fpsample, name)(c, k, *args, start_idx=0), o)
                       for c, o in zip(x.numpy(), ours.numpy()))
            print(f"  fpsample {name} picks the same indices as kptool: {same}")
    if available(o3d):
        got = [np.asarray(c.farthest_point_down_sample(k, 0).points) for c in o3d_clouds(x.numpy())]
        same = all(np.allclose(g, c[np.sort(o)], atol=1e-6) for g, c, o in zip(got, x.numpy(), ours.numpy()))
        print(f"  open3d picks the same set of points as kptool: {same}")


# ------------------------------------------------------------------ memory

def proc_status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(op: str) -> None:
    """Run one op on 20k x 20k clouds; print 'peak_mb_above_inputs elapsed_ms'."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(1, 20_000, 3, generator=g), torch.rand(1, 20_000, 3, generator=g)
    small = x[:, :100]
    runs = {
        "chamfer": lambda a, b: chamfer_distance(a, b),
        "chamfer fwd+bwd": lambda a, b: chamfer_distance(a.requires_grad_(), b).backward(),
        "knn k=16": lambda a, b: knn(a, b, 16),
        "knn k=16, torch path (CUDA code) on CPU": lambda a, b: knn_torch(a, b, 16, torch.tensor([b.shape[1]])),
    }
    runs[op](small.clone(), small.clone())  # load the kernels before measuring
    base = proc_status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current RSS: warm-up peaks do not count
    start = time.perf_counter()
    runs[op](x, y)
    elapsed = (time.perf_counter() - start) * 1e3
    print(f"{proc_status_mb('VmHWM') - base:.1f} {elapsed:.1f}")


def memory_section() -> bool:
    full_mb = 20_000 * 20_000 * 4 / 2**20
    print(f"\n== peak memory above inputs, 20,000 vs 20,000 points (a full distance matrix: {full_mb:.0f} MB)")
    ok = True
    for op in ("chamfer", "chamfer fwd+bwd", "knn k=16", "knn k=16, torch path (CUDA code) on CPU"):
        out = subprocess.run([sys.executable, __file__, "--memory-child", op], capture_output=True, text=True)
        if out.returncode:
            print(f"  {op:<42} failed: {out.stderr.strip().splitlines()[-1]}")
            ok = False
            continue
        peak, ms = map(float, out.stdout.split())
        within = peak < full_mb / 4
        ok &= within
        print(f"  {op:<42} {peak:8.1f} MB  {ms:9.1f} ms  {'PASS' if within else 'FAIL'}")
    return ok


# ------------------------------------------------------------------ main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="few repeats, for a smoke run")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child)
    repeats = 3 if args.quick else args.repeats
    import numba

    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), numba {numba.__version__} "
          f"({numba.get_num_threads()} threads), {os.cpu_count()} CPUs")
    g = torch.Generator().manual_seed(0)
    small = torch.rand(8, 2048, 3, generator=g)
    other = torch.rand(8, 2048, 3, generator=g)
    big = torch.rand(1, 100_000, 3, generator=g)
    results = []

    results.append(run_case("FPS B=8, N=2048 -> 512", lambda: farthest_point_sampling(small, 512),
                            fps_peers(small, 512), repeats))
    check_fps_exact(small, 512)
    results.append(run_case("FPS B=1, N=100,000 -> 2048", lambda: farthest_point_sampling(big, 2048),
                            fps_peers(big, 2048), max(3, repeats // 2)))
    results.append(run_case("kNN k=16, B=8, N=2048 (self-query)", lambda: knn(small, small, 16),
                            knn_peers(small, 16), repeats))
    features = torch.randn(8, 2048, 64, generator=g)
    results.append(run_case("kNN k=20 in feature space, B=8, N=2048, D=64 (self-query)",
                            lambda: knn(features, features, 20), knn_feature_peers(features, 20), repeats))
    with torch.no_grad():
        results.append(run_case("Chamfer forward, B=8, 2048 vs 2048", lambda: chamfer_distance(small, other),
                                chamfer_peers(small, other, backward=False), repeats))
    xg, yg = small.clone().requires_grad_(), other.clone().requires_grad_()
    results.append(run_case("Chamfer forward+backward, B=8, 2048 vs 2048",
                            lambda: chamfer_distance(xg, yg).backward(),
                            chamfer_peers(small, other, backward=True), repeats))
    results.append(memory_section())
    print(f"\n{sum(results)}/{len(results)} checks pass")


if __name__ == "__main__":
    main()
