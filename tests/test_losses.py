"""Composite Chamfer distance: hand-worked values, vectorised == literal reference, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from kptool.losses import composite_chamfer_distance, composite_chamfer_distance_reference
from kptool.losses.chamfer import _nearest_in_each_part_torch, _nearest_indices

from conftest import requires_cuda

EPS_DIST = math.sqrt(1e-4)  # distance of two equal points


def _line(n: int) -> torch.Tensor:
    x = torch.linspace(-1, 1, n, dtype=torch.float64)
    return torch.stack([x, torch.zeros_like(x), torch.zeros_like(x)], -1)[None]


@pytest.mark.parametrize("ccd", [composite_chamfer_distance, composite_chamfer_distance_reference])
def test_exact_cover_known_values(ccd):
    cloud = _line(50)
    # one skeleton made of exactly the cloud's points: every distance is sqrt(1e-4)
    full = ccd(cloud, cloud, [50], torch.ones(1, 1, dtype=torch.float64))
    assert full.item() == pytest.approx(2 * EPS_DIST)
    # half the activation: fidelity and coverage halve, half the mass is missing (x20)
    half = ccd(cloud, cloud, [50], torch.full((1, 1), 0.5, dtype=torch.float64))
    assert half.item() == pytest.approx(EPS_DIST + 20 * 0.5)


@pytest.mark.parametrize("ccd", [composite_chamfer_distance, composite_chamfer_distance_reference])
def test_coverage_walk_known_values(ccd):
    # one input point at the origin; skeleton A (1 point) at distance 1, skeleton B at distance 2
    cloud = torch.zeros(1, 1, 3, dtype=torch.float64)
    skeleton = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 2.0, 0.0]]], dtype=torch.float64)
    act = torch.tensor([[0.7, 0.6]], dtype=torch.float64)
    d1, d2 = math.sqrt(1 + 1e-4), math.sqrt(4 + 1e-4)
    fidelity = (0.7 * d1 + 0.6 * d2) / 2
    coverage = 0.7 * d1 + 0.3 * d2           # walk: A takes 0.7, B the remaining 0.3
    assert ccd(cloud, skeleton, [1, 1], act).item() == pytest.approx(fidelity + coverage)
    # B first when it is nearer; missing mass when activations sum below 1
    act = torch.tensor([[0.2, 0.3]], dtype=torch.float64)
    expected = (0.2 * d1 + 0.3 * d2) / 2 + 0.2 * d1 + 0.3 * d2 + 20 * 0.5
    assert ccd(cloud, skeleton, [1, 1], act).item() == pytest.approx(expected)


def test_good_skeleton_beats_bad_one():
    cloud = _line(200).float()
    good = _line(60).float()
    bad = good + torch.tensor([0.0, 0.5, 0.0])
    one = torch.ones(1, 1)
    assert composite_chamfer_distance(cloud, good, [60], one) < 0.05
    assert composite_chamfer_distance(cloud, bad, [60], one) > 0.9


@pytest.mark.parametrize("seed,counts", [(0, [5, 7, 3, 9]), (1, [15]), (2, [1, 2, 1, 30, 4, 4])])
def test_vectorised_matches_reference(seed, counts):
    g = torch.Generator().manual_seed(seed)
    B, N, T = 3, 40, sum(counts)
    x = (torch.rand(B, N, 3, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_()
    s = (torch.rand(B, T, 3, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_()
    a = torch.rand(B, len(counts), generator=g, dtype=torch.float64).requires_grad_()
    ref = composite_chamfer_distance_reference(x, s, counts, a)
    fast = composite_chamfer_distance(x, s, counts, a)
    torch.testing.assert_close(fast, ref)
    weights = torch.rand(B, generator=g, dtype=torch.float64)
    for g_fast, g_ref in zip(torch.autograd.grad((fast * weights).sum(), [x, s, a]),
                             torch.autograd.grad((ref * weights).sum(), [x, s, a])):
        assert torch.isfinite(g_fast).all()
        torch.testing.assert_close(g_fast, g_ref)


def test_numba_and_torch_searches_agree():
    g = torch.Generator().manual_seed(3)
    counts = [4, 11, 1, 8]
    x = torch.rand(2, 57, 3, generator=g)
    s = torch.rand(2, sum(counts), 3, generator=g)
    fidelity, cover = _nearest_indices(x, s, counts)
    assert torch.equal(cover, _nearest_in_each_part_torch(x, s, counts, chunk=16))
    # brute force: nearest cloud point of each skeleton point; nearest point of each part
    d = torch.cdist(x, s)                                            # (B, N, T)
    assert torch.equal(fidelity, d.argmin(1))
    starts = [0, 4, 15, 16, 24]
    brute = torch.stack([d[:, :, a:b].argmin(-1) + a for a, b in zip(starts[:-1], starts[1:])], -1)
    assert torch.equal(cover, brute)


def test_gradients_repeat_bit_for_bit_on_several_threads():
    # PyTorch's CPU index_put(accumulate=True), also the backward of x[i, j], adds with
    # parallel atomics unless deterministic algorithms are on: the gradient's last bits then
    # depend on thread timing. The CCD must give the deterministic mode's gradient without it.
    g = torch.Generator().manual_seed(5)
    counts = [45] * 20
    x = torch.rand(8, 2048, 3, generator=g)
    s = torch.rand(8, sum(counts), 3, generator=g).requires_grad_()
    a = torch.rand(8, len(counts), generator=g).mul(0.3).requires_grad_()

    def grads():
        return torch.autograd.grad(composite_chamfer_distance(x, s, counts, a).sum(), [s, a])

    threads, was_deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(2)
    try:
        default = grads()
        torch.use_deterministic_algorithms(True)
        deterministic = grads()
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)
    for got, want in zip(default, deterministic):
        assert torch.equal(got, want)


def test_float32_gradients_finite_with_coincident_points():
    x = torch.rand(2, 30, 3)
    s = x[:, :12].clone().requires_grad_()   # skeleton points exactly on cloud points
    a = torch.full((2, 3), 0.5, requires_grad=True)
    loss = composite_chamfer_distance(x, s, [4, 4, 4], a).sum()
    loss.backward()
    assert torch.isfinite(s.grad).all() and torch.isfinite(a.grad).all()


def test_bad_arguments():
    x, s, a = torch.rand(2, 10, 3), torch.rand(2, 6, 3), torch.rand(2, 2)
    with pytest.raises(ValueError, match="sum to T"):
        composite_chamfer_distance(x, s, [3, 4], a)
    with pytest.raises(ValueError, match="activations"):
        composite_chamfer_distance(x, s, [3, 3], torch.rand(2, 3))
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        composite_chamfer_distance(x[..., :2], s, [3, 3], a)


@requires_cuda
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(4)
    counts = [20, 35, 17]
    x, s = torch.rand(2, 300, 3, generator=g), torch.rand(2, sum(counts), 3, generator=g)
    a = torch.rand(2, 3, generator=g)
    cpu = composite_chamfer_distance(x, s, counts, a)
    cuda = composite_chamfer_distance(x.cuda(), s.cuda(), counts, a.cuda())
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-5, atol=1e-6)
