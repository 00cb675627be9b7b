"""Seconds per optimisation step of the skeleton-merger and skeleton-mutual presets.

    python benchmarks/train_step.py [--preset skeleton-mutual] [--device auto] [--steps 5]

One step = forward, training loss, backward and an Adadelta update (eps 1e-2, as the
reference code) of the preset's model — the reference architecture, k = 10 — on a
batch of 8 clouds of 2048 points. The clouds are random but shaped like objects (a
seat-like slab, a back, legs: boxes and a sphere sampled on their surfaces, scaled
to [-1, 1] like Skeleton Merger's normalisation), so that ball queries and
skeleton lengths behave as on real data. Warm-up steps (numba compilation, allocator
warm-up) are not timed; the presets' steps are interleaved so that machine load hits
both alike. Prints the median and minimum per preset; the LAST line is
``seconds_per_step=<median>`` of ``--preset`` (default skeleton-mutual).

Target (issue): at most 0.97 s per step on a 2-core CPU, a third of the authors'
Skeleton Merger code (2.9 s) on that machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

from kptool.models import build_model
from kptool.train.config import resolve_config

PRESETS = ("skeleton-merger", "skeleton-mutual")


def structured_clouds(batch: int, points: int, seed: int = 0) -> torch.Tensor:
    """``(B, N, 3)`` chair-like clouds: slab, back, four legs, a ball; random proportions."""
    g = torch.Generator().manual_seed(seed)

    def box(n, lo, hi):
        # uniform on the surface: pick a face axis, then a point on that face
        p = lo + (hi - lo) * torch.rand(n, 3, generator=g)
        axis = torch.randint(0, 3, (n,), generator=g)
        side = torch.randint(0, 2, (n,), generator=g).bool()
        rows = torch.arange(n)
        p[rows, axis] = torch.where(side, hi[axis], lo[axis])
        return p

    clouds = []
    for _ in range(batch):
        w, d, h = (0.6 + 0.4 * torch.rand(3, generator=g)).tolist()
        t = 0.05 + 0.05 * torch.rand(1, generator=g).item()
        parts = [box(points // 4, torch.tensor([-w, 0, -d]), torch.tensor([w, t, d])),
                 box(points // 4, torch.tensor([-w, t, d - t]), torch.tensor([w, t + h, d]))]
        for sx in (-1, 1):
            for sz in (-1, 1):
                c = torch.tensor([sx * (w - t), 0, sz * (d - t)])
                parts.append(box(points // 16, c - torch.tensor([t, h, t]), c + torch.tensor([t, 0, t])))
        rest = points - sum(len(p) for p in parts)
        ball = torch.randn(rest, 3, generator=g)
        parts.append(0.15 * ball / ball.norm(dim=1, keepdim=True) + torch.tensor([0, t + h, d]))
        cloud = torch.cat(parts)
        lo, hi = cloud.min(), cloud.max()
        clouds.append((cloud - lo) / (hi - lo) * 2 - 1)
    return torch.stack(clouds)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="skeleton-mutual", choices=PRESETS,
                    help="preset whose median is printed last as seconds_per_step=")
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per preset")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per preset first")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--points", type=int, default=2048)
    ap.add_argument("--keypoints", type=int, default=10)
    args = ap.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)

    torch.manual_seed(0)
    clouds = structured_clouds(args.batch, args.points).to(device)
    runs = {}
    for name in PRESETS:
        model_cfg = {**resolve_config(name)["model"], "num_keypoints": args.keypoints}
        model = build_model(model_cfg).to(device).train()
        runs[name] = (model, torch.optim.Adadelta(model.parameters(), lr=1.0, eps=1e-2), [])

    def step(model, optimizer) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss, _ = model.training_loss(clouds)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    for _ in range(args.warmup):
        for model, optimizer, _ in runs.values():
            step(model, optimizer)
    for _ in range(args.steps):
        for model, optimizer, times in runs.values():
            times.append(step(model, optimizer))

    print(f"device={device} torch_threads={torch.get_num_threads()} cpus={os.cpu_count()} "
          f"batch={args.batch} points={args.points} keypoints={args.keypoints} steps={args.steps}")
    for name, (model, _, times) in runs.items():
        params = sum(p.numel() for p in model.parameters())
        print(f"{name}: median {statistics.median(times):.3f} s/step, min {min(times):.3f}, "
              f"params {params}")
    print(f"seconds_per_step={statistics.median(runs[args.preset][2]):.4f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
