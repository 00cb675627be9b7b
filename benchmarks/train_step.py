"""Seconds per optimisation step of a family of presets: the skeleton presets (default),
paper 001's shape-basis presets, or paper 002's embedding presets.

    python benchmarks/train_step.py [--preset skeleton-mutual] [--device auto] [--steps 5]
    python benchmarks/train_step.py --family shape-basis [--preset symmetric-basis]
    python benchmarks/train_step.py --family embed [--steps 5]
    python benchmarks/train_step.py --family pretrain   # paper 003: parae-/jigsaw- presets, B 16, N 1024

``--family shape-basis`` times symmetric-basis, -deform, -nosym and usip on the
authors' reference configuration (B = 32, 1600 points, 14 nodes, Adam) on the same
kind of clouds; ``--family embed`` times embed-pointnet, -pointnet2 and -dgcnn (batch 4,
12 correspondence sets per cloud); the rest of this text describes the skeleton family.

One step = forward, training loss, backward and an update by the preset's optimiser
(skeleton-merger: Adadelta, eps 1e-2, as its reference code; skeleton-mutual: Adam, as
its paper) of the preset's model — the reference architecture, k = 10 — on a
batch of 8 clouds of 2048 points. The clouds are random but shaped like objects (a
seat-like slab, a back, legs: boxes and a sphere sampled on their surfaces, scaled
to [-1, 1] like Skeleton Merger's normalisation), so that ball queries and
skeleton lengths behave as on real data. Warm-up steps (numba compilation, allocator
warm-up) are not timed; the presets' steps are interleaved so that machine load hits
both alike. Prints the median and minimum per preset; the LAST line is
``seconds_per_step=<median>`` of ``--preset`` (default skeleton-mutual).

Target (issue): at most 0.97 s per step on a 2-core CPU, a third of the authors'
Skeleton Merger code (2.9 s) on that machine. On a shared machine absolute times
move with the load; ``--baseline`` also times :class:`AuthorsStyleMerger` (the
authors' algorithms, interleaved with kptool's steps) and prints the ratio.
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
from kptool.train.loop import build_optimizer

PRESETS = ("skeleton-merger", "skeleton-mutual")
EMBED_PRESETS = ("embed-pointnet", "embed-pointnet2", "embed-dgcnn")
PRETRAIN_PRESETS = ("parae-pointnet", "parae-dgcnn", "jigsaw-pointnet", "jigsaw-dgcnn")   # paper 003
# Paper 001 (--family shape-basis): its authors' settings are the reference configuration,
# B = 32 clouds of 1600 points, 14 nodes (their README's training command).
SHAPE_BASIS_PRESETS = ("symmetric-basis", "symmetric-basis-deform", "symmetric-basis-nosym", "usip")
# family: (presets, batch, points, keypoints; None = the preset's own model section)
FAMILIES = {"skeleton": (PRESETS, 8, 2048, 10), "shape-basis": (SHAPE_BASIS_PRESETS, 32, 1600, 14),
            "embed": (EMBED_PRESETS, 4, 2048, None), "pretrain": (PRETRAIN_PRESETS, 16, 1024, None)}


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


def embedding_batch(clouds: torch.Tensor, sets: int = 12) -> dict:
    """The batch an embedding preset trains on: every cloud annotated at the same ``sets`` point
    indices (structured_clouds builds its parts in one order, so index i lies on the same part of
    every cloud), D = the mean Euclidean distance between those points over the clouds."""
    b, n, _ = clouds.shape
    index = torch.linspace(0, n - 1, sets).long()
    picked = clouds[:, index]                                        # (B, S, 3)
    d = torch.cdist(picked, picked).mean(0).cpu().numpy()           # (S, S)
    return {"points": clouds, "keypoint_ids": [torch.arange(sets, device=clouds.device)] * b,
            "keypoint_point_index": [index.to(clouds.device)] * b, "extras/set_distances": [d] * b}


# --- The authors' Skeleton Merger, same algorithms (for a same-load comparison) -------------
# A compact re-statement of what the reference code (Skeleton Merger + its PointNet++ port)
# computes per step: FPS as a Python loop, ball query through a dense distance matrix and a
# sort, channel-first 1x1 convolutions, one decoder head and one Chamfer term per keypoint
# pair in Python loops. Same widths as kptool's preset; only used with --baseline.

def _sq_dist(a, b):  # the reference's square_distance: |a|^2 + |b|^2 - 2 a.b through a matmul
    return a.square().sum(-1)[:, :, None] + b.square().sum(-1)[:, None, :] - 2 * a @ b.transpose(1, 2)


def _index(points, idx):
    rows = torch.arange(points.shape[0], device=points.device).view(-1, *([1] * (idx.dim() - 1)))
    return points[rows, idx]


def _fps_loop(xyz, npoint):
    b, n, _ = xyz.shape
    out = torch.zeros(b, npoint, dtype=torch.long, device=xyz.device)
    dist = torch.full((b, n), 1e10, device=xyz.device)
    far = torch.zeros(b, dtype=torch.long, device=xyz.device)
    rows = torch.arange(b, device=xyz.device)
    for i in range(npoint):
        out[:, i] = far
        d = (xyz - xyz[rows, far][:, None]).square().sum(-1)
        dist = torch.minimum(dist, d)
        far = dist.argmax(-1)
    return out


def _ball_dense(radius, nsample, xyz, centers):
    n = xyz.shape[1]
    idx = torch.arange(n, device=xyz.device).expand(centers.shape[0], centers.shape[1], n).clone()
    idx[_sq_dist(centers, xyz) > radius ** 2] = n
    idx = idx.sort(-1).values[:, :, :nsample]
    first = idx[:, :, :1].expand_as(idx)
    return torch.where(idx == n, first, idx)


def _conv_stack(dims, conv, bn):
    layers = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [conv(a, b, 1), bn(b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers)


class _SA(torch.nn.Module):
    def __init__(self, npoint, radii, nsamples, cin, widths):
        super().__init__()
        self.npoint, self.radii, self.nsamples = npoint, radii, nsamples
        self.mlps = torch.nn.ModuleList(_conv_stack([cin + 3, *w], torch.nn.Conv2d, torch.nn.BatchNorm2d)
                                        for w in widths)

    def forward(self, xyz, points):                 # (B, N, 3), (B, N, C) as the reference's permuted tensors
        centers = _index(xyz, _fps_loop(xyz, self.npoint))
        outs = []
        for r, k, mlp in zip(self.radii, self.nsamples, self.mlps):
            idx = _ball_dense(r, k, xyz, centers)
            grouped = torch.cat([_index(points, idx), _index(xyz, idx) - centers[:, :, None]], -1)
            outs.append(mlp(grouped.permute(0, 3, 2, 1)).max(2).values)      # (B, C, S)
        return centers, torch.cat(outs, 1).permute(0, 2, 1)


class _FP(torch.nn.Module):
    def __init__(self, cin, widths):
        super().__init__()
        self.mlp = _conv_stack([cin, *widths], torch.nn.Conv1d, torch.nn.BatchNorm1d)

    def forward(self, xyz1, xyz2, p1, p2):
        if xyz2.shape[1] == 1:
            interp = p2.expand(-1, xyz1.shape[1], -1)
        else:
            d, idx = _sq_dist(xyz1, xyz2).sort(-1)
            w = 1.0 / (d[:, :, :3] + 1e-8)
            w = w / w.sum(-1, keepdim=True)
            interp = (_index(p2, idx[:, :, :3]) * w[..., None]).sum(2)
        x = interp if p1 is None else torch.cat([p1, interp], -1)
        return self.mlp(x.permute(0, 2, 1)).permute(0, 2, 1)


class AuthorsStyleMerger(torch.nn.Module):
    """Skeleton Merger as the authors' code computes it (slow on purpose; timing baseline only)."""

    def __init__(self, k=10):
        from kptool.models.backbones.pointnet2 import REFERENCE_FP, REFERENCE_SA

        super().__init__()
        self.k = k
        self.sa = torch.nn.ModuleList()
        chans = [9]
        for npoint, radii, ns, widths in REFERENCE_SA:
            self.sa.append(_SA(npoint, radii, ns, chans[-1], widths))
            chans.append(sum(w[-1] for w in widths))
        self.fp = torch.nn.ModuleList()
        coarse = chans[-1]
        for i, widths in enumerate(REFERENCE_FP):
            fine = chans[len(chans) - 2 - i] if i < len(REFERENCE_FP) - 1 else 0
            self.fp.append(_FP(fine + coarse, widths))
            coarse = widths[-1]
        self.head = torch.nn.Sequential(torch.nn.Conv1d(128, 128, 1), torch.nn.BatchNorm1d(128), torch.nn.ReLU(),
                                        torch.nn.Dropout(0.5), torch.nn.Conv1d(128, k, 1))
        self.mix = torch.nn.Linear(k, k)
        p = k * (k - 1) // 2
        self.ma = torch.nn.Sequential(torch.nn.Linear(1024, 512), torch.nn.BatchNorm1d(512), torch.nn.ReLU(),
                                      torch.nn.Linear(512, 256), torch.nn.BatchNorm1d(256), torch.nn.ReLU(),
                                      torch.nn.Linear(256, p))
        self.emb = torch.nn.ParameterList(torch.nn.Parameter(torch.randn(200, 3) * 0.002) for _ in range(p))

    def training_loss(self, batch):
        from kptool.losses import composite_chamfer_distance_reference

        x = batch["points"]
        levels = [(x, x.repeat(1, 1, 3))]
        for sa in self.sa:
            levels.append(sa(*levels[-1]))
        deepest = levels[-1][1]
        cxyz, c = levels[-1]
        for i, fp in enumerate(self.fp):
            fxyz, f = levels[len(levels) - 2 - i]
            c = fp(fxyz, cxyz, f if i < len(self.fp) - 1 else None, c)
            cxyz = fxyz
        scores = torch.log_softmax(self.head(c.permute(0, 2, 1)), 1).permute(0, 2, 1)
        kp = torch.softmax(self.mix(scores).permute(0, 2, 1), -1) @ x
        parts, h = [], 0
        for i in range(self.k):
            for j in range(i):
                length = torch.sqrt(1e-3 + (kp[:, i] - kp[:, j]).square().sum(-1)).mean()
                count = min(200, max(15, int((length / 0.01).item())))
                f = torch.linspace(0, 1, count, device=x.device)[None, :, None]
                parts.append(kp[:, i, None] * f + kp[:, j, None] * (1 - f) + self.emb[h][:count])
                h += 1
        act = torch.sigmoid(self.ma(deepest.max(1).values))
        ccd = composite_chamfer_distance_reference(x, torch.cat(parts, 1), [q.shape[1] for q in parts], act)
        loss = ccd.mean() + 0.01 * sum((e ** 2).sum() for e in self.emb)
        return loss, {}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="skeleton", choices=list(FAMILIES),
                    help="presets timed together: skeleton (B 8, N 2048, k 10), shape-basis (paper 001: "
                         "B 32, N 1600, 14 nodes) embed (paper 002: B 4) or pretrain (paper 003: B 16, N 1024); --batch/--points/--keypoints override")
    ap.add_argument("--preset", default=None,
                    choices=PRESETS + SHAPE_BASIS_PRESETS + EMBED_PRESETS + PRETRAIN_PRESETS,
                    help="preset whose median is printed last as seconds_per_step= (default: the family's "
                         "skeleton-mutual, or its first)")
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per preset")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per preset first")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--points", type=int, default=None)
    ap.add_argument("--keypoints", type=int, default=None)
    ap.add_argument("--baseline", action="store_true",
                    help="also time the authors' algorithms (AuthorsStyleMerger) interleaved, and print "
                         "the ratio kptool / authors' for each preset")
    args = ap.parse_args(argv)
    presets, batch, points, keypoints = FAMILIES[args.family]
    args.batch, args.points = args.batch or batch, args.points or points
    args.keypoints = args.keypoints or keypoints
    args.preset = args.preset or presets[1 if args.family == "skeleton" else 0]
    if args.preset not in presets:
        ap.error(f"--preset {args.preset} is not in --family {args.family}")
    if args.baseline and args.family != "skeleton":
        ap.error("--baseline times the authors' Skeleton Merger: --family skeleton only")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)

    torch.manual_seed(0)
    clouds = structured_clouds(args.batch, args.points).to(device)
    batch = embedding_batch(clouds) if args.family == "embed" else {"points": clouds}
    runs = {}
    for name in presets:
        config = resolve_config(name)
        section = config["model"] if args.keypoints is None else {**config["model"], "num_keypoints": args.keypoints}
        model = build_model(section).to(device).train()
        runs[name] = (model, build_optimizer(model, config["train"]), [])
    if args.baseline:
        model = AuthorsStyleMerger(args.keypoints).to(device).train()
        runs["authors-skeleton-merger"] = (model, torch.optim.Adadelta(model.parameters(), lr=1.0, eps=1e-2), [])

    def step(model, optimizer) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss, _ = model.training_loss(batch)
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
          f"batch={len(clouds)} points={args.points} keypoints={args.keypoints} steps={args.steps}")
    for name, (model, _, times) in runs.items():
        params = sum(p.numel() for p in model.parameters())
        ratio = ""
        if "authors-skeleton-merger" in runs and name in presets:
            base = runs["authors-skeleton-merger"][2]
            ratio = (f", {statistics.median(times) / statistics.median(base):.2f} x the authors' algorithms "
                     f"(medians; {min(times) / min(base):.2f} on minimums)")
        print(f"{name}: median {statistics.median(times):.3f} s/step, min {min(times):.3f}, "
              f"params {params}{ratio}")
    print(f"seconds_per_step={statistics.median(runs[args.preset][2]):.4f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
