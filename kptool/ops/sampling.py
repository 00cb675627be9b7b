"""Farthest point sampling."""

from __future__ import annotations

import torch

from kptool.ops import _cpu
from kptool.ops._checks import check_lengths, check_points, check_positive_int

FPS_LEAF_SIZE = 256


def farthest_point_sampling(
    points: torch.Tensor,
    num_samples: int,
    lengths: torch.Tensor | None = None,
    start_index: int | str = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Indices of ``num_samples`` points picked by iterative farthest point sampling.

    Args:
        points: ``(B, N, 3)`` float tensor.
        num_samples: ``K``, number of indices per cloud.
        lengths: ``(B,)`` number of valid points of each cloud (the first
            ``lengths[b]`` rows of ``points[b]``; the rest is padding). Default: all ``N``.
        start_index: index of the first sample in every cloud, or ``"random"`` for a
            uniform draw per cloud from ``generator`` (reproducible with a seeded one).
        generator: used only with ``start_index="random"``.

    Returns:
        ``(B, K)`` int64 indices into ``points``. Sample ``i + 1`` is the point whose
        squared distance to its nearest earlier sample is largest; ties go to the
        lowest index. No index repeats while unselected points remain, duplicate
        points included. When ``K > lengths[b]`` the first ``lengths[b]`` entries are
        all of the cloud's points and the rest repeat the first sample, so the
        result can always be used for gathering.

    CPU tensors use a k-d tree accelerated exact FPS (float32 distances); CUDA
    tensors a loop of ``K`` vectorised steps over the batch. Not differentiable
    (indices only).
    """
    check_points("points", points)
    check_positive_int("num_samples", num_samples)
    B, N, _ = points.shape
    lengths = check_lengths("lengths", lengths, B, N, points.device)
    starts = _start_indices(start_index, lengths, generator)
    if points.is_cuda:
        return fps_torch(points, num_samples, lengths, starts)
    out = _cpu.fps(_cpu.f32(points), lengths.numpy(), num_samples, starts.cpu().numpy(), FPS_LEAF_SIZE)
    return torch.from_numpy(out)


def _start_indices(start_index, lengths: torch.Tensor, generator) -> torch.Tensor:
    if isinstance(start_index, str):
        if start_index != "random":
            raise ValueError(f"start_index must be an integer or 'random', got {start_index!r}")
        device = generator.device if generator is not None else lengths.device
        u = torch.rand(lengths.shape, generator=generator, device=device, dtype=torch.float64)
        return (u * lengths.to(device)).long().clamp_max(lengths.to(device) - 1).to(lengths.device)
    if isinstance(start_index, bool) or not isinstance(start_index, int):
        raise ValueError(f"start_index must be an integer or 'random', got {start_index!r}")
    shortest = int(lengths.min())
    if not 0 <= start_index < shortest:
        raise ValueError(f"start_index {start_index} is outside the shortest cloud ({shortest} points)")
    return torch.full_like(lengths, start_index)


def fps_torch(points: torch.Tensor, num_samples: int, lengths: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """Vectorised FPS on any device: ``(B, N, 3)``, ``(B,)``, ``(B,)`` -> ``(B, K)``.

    Same definition as :func:`farthest_point_sampling` (whose CUDA path this is);
    memory ``O(B N)``.
    """
    B, N, _ = points.shape
    points = points.detach()
    rows = torch.arange(B, device=points.device)
    dist = torch.full((B, N), float("inf"), dtype=points.dtype, device=points.device)
    dist.masked_fill_(torch.arange(N, device=points.device) >= lengths[:, None], float("-inf"))
    out = torch.empty((B, num_samples), dtype=torch.int64, device=points.device)
    cur = starts.to(points.device)
    for s in range(num_samples):
        out[:, s] = cur
        if s == num_samples - 1:
            break
        d = (points - points[rows, cur][:, None, :]).square().sum(-1)
        dist = torch.minimum(dist, d)
        dist[rows, cur] = -1.0
        cur = dist.argmax(1)  # first maximum: ties go to the lowest index
    valid = torch.arange(num_samples, device=points.device) < lengths[:, None]
    return torch.where(valid, out, out[:, :1])
