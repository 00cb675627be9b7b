"""ParAE's mixture likelihood and the Jigsaw3D pretext against plain references and hand cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from kptool.losses.gmm import gmm_nll, mixture_from_logits, mixture_log_likelihood
from kptool.losses.jigsaw import cell_index, jigsaw_loss, jigsaw_shuffle

from conftest import requires_cuda


def reference_nll(points: np.ndarray, logits: np.ndarray, ridge: float) -> float:
    """Eqs. 5-10 of the paper literally, in float64 numpy, with scipy's Gaussian density."""
    gamma = np.exp(logits - logits.max(1, keepdims=True))
    gamma /= gamma.sum(1, keepdims=True)
    n, j = gamma.shape
    density = np.zeros(n)
    for c in range(j):
        g = gamma[:, c]
        pi = g.sum() / n
        mu = (g[:, None] * points).sum(0) / g.sum()
        d = points - mu
        cov = (g[:, None, None] * d[:, :, None] * d[:, None, :]).sum(0) / g.sum() + ridge * np.eye(3)
        density += pi * multivariate_normal(mu, cov).pdf(points)
    return float(-np.log(density).mean())


def test_one_component_is_the_maximum_likelihood_gaussian():
    # J = 1, no ridge: Sigma is the ML covariance, so the mean Mahalanobis term is exactly 3.
    pts = torch.randn(1, 50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * torch.tensor(
        [1.0, 2.0, 0.5], dtype=torch.float64)
    nll = gmm_nll(pts, torch.zeros(1, 50, 1, dtype=torch.float64), ridge=0.0)
    cov = np.cov(pts[0].numpy().T, bias=True)
    expected = 0.5 * (3 * math.log(2 * math.pi) + np.linalg.slogdet(cov)[1] + 3)
    assert nll.item() == pytest.approx(expected, rel=1e-10)


def test_hard_assignments_give_each_clusters_statistics():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 0.1, (20, 3)), rng.normal(5, 0.3, (30, 3))
    pts = torch.tensor(np.concatenate([a, b])[None])
    logits = torch.full((1, 50, 2), -60.0, dtype=torch.float64)
    logits[0, :20, 0] = logits[0, 20:, 1] = 60.0
    mix = mixture_from_logits(pts, logits, ridge=0.0)
    np.testing.assert_allclose(mix.weights[0].numpy(), [0.4, 0.6], atol=1e-12)
    np.testing.assert_allclose(mix.means[0].numpy(), [a.mean(0), b.mean(0)], atol=1e-12)
    np.testing.assert_allclose(mix.covariances[0, 1].numpy(), np.cov(b.T, bias=True), atol=1e-12)


@pytest.mark.parametrize("j,ridge", [(2, 0.0), (4, 1e-3), (8, 1e-2)])
def test_matches_scipy_reference_on_soft_assignments(j, ridge):
    rng = np.random.default_rng(j)
    pts = rng.normal(size=(2, 40, 3)) * [1.0, 0.5, 2.0]
    logits = rng.normal(size=(2, 40, j)) * 2
    got = gmm_nll(torch.tensor(pts), torch.tensor(logits), ridge=ridge)
    for b in range(2):
        assert got[b].item() == pytest.approx(reference_nll(pts[b], logits[b], ridge), rel=1e-9)


def test_log_likelihood_matches_scipy_per_point():
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(1, 25, 3))
    mix = mixture_from_logits(torch.tensor(pts), torch.tensor(rng.normal(size=(1, 25, 3))), ridge=1e-3)
    got = mixture_log_likelihood(torch.tensor(pts), mix)[0].numpy()
    dens = sum(mix.weights[0, c].item() * multivariate_normal(mix.means[0, c].numpy(),
                                                              mix.covariances[0, c].numpy()).pdf(pts[0])
               for c in range(3))
    np.testing.assert_allclose(got, np.log(dens), rtol=1e-10)


def test_gradients_are_finite_and_correct_for_degenerate_partitions():
    # coplanar points (z = 0) and a partition that receives almost nothing: the ridge keeps it defined
    g = torch.Generator().manual_seed(0)
    pts = torch.cat([torch.rand(1, 30, 2, generator=g, dtype=torch.float64),
                     torch.zeros(1, 30, 1, dtype=torch.float64)], -1)
    logits = torch.randn(1, 30, 4, generator=g, dtype=torch.float64)
    logits[..., 3] -= 40
    logits.requires_grad_(True)
    loss = gmm_nll(pts, logits, ridge=1e-3).sum()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    small = torch.randn(1, 12, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: gmm_nll(pts[:, :12], s, ridge=1e-2), (small,))


def test_fitting_the_logits_lowers_the_nll():
    # two well separated blobs: optimising the logits alone must find a better mixture than one blob
    g = torch.Generator().manual_seed(0)
    pts = torch.cat([torch.randn(1, 64, 3, generator=g) * 0.05, torch.randn(1, 64, 3, generator=g) * 0.05 + 1], 1)
    logits = torch.zeros(1, 128, 2).normal_(generator=g).mul_(0.01).requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=0.1)
    start = gmm_nll(pts, logits).item()
    for _ in range(100):
        opt.zero_grad()
        gmm_nll(pts, logits).sum().backward()
        opt.step()
    assert gmm_nll(pts, logits).item() < start - 1.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="logits"):
        gmm_nll(torch.zeros(1, 5, 3), torch.zeros(1, 4, 2))
    with pytest.raises(ValueError, match="points"):
        gmm_nll(torch.zeros(1, 5, 2), torch.zeros(1, 5, 2))


def test_cell_index_hand_case():
    pts = torch.tensor([[[0.0, 0.0, 0.0], [3.0, 3.0, 3.0], [1.5, 0.2, 2.9], [2.0, 1.0, 0.99]]])
    idx, size, _ = cell_index(pts, 3)
    # cells of side 1: (0,0,0) -> 0, (2,2,2) upper corner -> 26, (1,0,2) -> 11, (2,1,0) -> 21
    assert idx.tolist() == [[0, 26, 11, 21]]
    np.testing.assert_allclose(size.numpy(), [[1.0, 1.0, 1.0]])


def test_jigsaw_moves_whole_cells_and_labels_undo_it():
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(3, 500, 3, generator=g) * torch.tensor([2.0, 1.0, 0.5])
    out = jigsaw_shuffle(pts, 3, generator=g)
    before, size, _ = cell_index(pts, 3)
    assert torch.equal(out.labels, before)
    shift = out.points - pts
    for b in range(3):
        dest = {}
        for c in out.labels[b].unique().tolist():
            s = shift[b][out.labels[b] == c]
            assert torch.allclose(s, s[0].expand_as(s), atol=1e-5)      # one translation per cell ...
            steps = s[0] / size[b]
            assert torch.allclose(steps, steps.round(), atol=1e-4)      # ... by whole cells
            a, bb, cc = (torch.tensor([c // 9, (c // 3) % 3, c % 3]) + steps.round().long()).tolist()
            assert 0 <= min(a, bb, cc) and max(a, bb, cc) <= 2          # into a cell of the same box
            dest[c] = a * 9 + bb * 3 + cc
        assert len(set(dest.values())) == len(dest)                     # a permutation of the cells
    # identity when k = 1
    assert torch.equal(jigsaw_shuffle(pts, 1, generator=g).points, pts)


def test_jigsaw_loss_is_cross_entropy():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])
    labels = torch.tensor([[0, 1]])
    expected = (-math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(2)) / 2
    assert jigsaw_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


@requires_cuda
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(0)
    pts, logits = torch.randn(2, 64, 3, generator=g), torch.randn(2, 64, 8, generator=g)
    torch.testing.assert_close(gmm_nll(pts.cuda(), logits.cuda()).cpu(), gmm_nll(pts, logits), rtol=1e-4, atol=1e-4)
    out = jigsaw_shuffle(pts.cuda(), 3)
    assert out.labels.device.type == "cuda" and torch.equal(out.labels.cpu(), cell_index(pts, 3)[0])
