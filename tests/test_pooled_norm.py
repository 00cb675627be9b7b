"""The fused BatchNorm + ReLU + max-pool equals the plain composition: values, gradients, running statistics."""

from __future__ import annotations

import pytest
import torch

from kptool.models.backbones.pointnet2 import SetAbstractionMSG
from kptool.models.backbones.pooled_norm import pooled_bn_relu

from conftest import requires_cuda


def plain(x: torch.Tensor, bn: torch.nn.BatchNorm1d, dim: int = 2) -> torch.Tensor:
    return torch.relu(bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)).max(dim=dim).values


def twin_norms(channels: int, weight: torch.Tensor, momentum=0.1, device="cpu"):
    norms = []
    for _ in range(2):
        bn = torch.nn.BatchNorm1d(channels, momentum=momentum).double().to(device)
        with torch.no_grad():
            bn.weight.copy_(weight)
            bn.bias.copy_(torch.linspace(-0.5, 0.5, channels))
            bn.running_mean.copy_(torch.linspace(-1, 1, channels))
        norms.append(bn)
    return norms


def compare(x: torch.Tensor, weight: torch.Tensor, momentum=0.1, dim=2, steps=2):
    ref_bn, fused_bn = twin_norms(x.shape[-1], weight, momentum, x.device)
    for _ in range(steps):
        grad = torch.randn(*x.shape[:dim], *x.shape[dim + 1:], dtype=x.dtype, device=x.device)
        xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
        ref, fused = plain(xr, ref_bn, dim), pooled_bn_relu(xf, fused_bn, dim)
        torch.testing.assert_close(fused, ref, rtol=1e-10, atol=1e-12)
        (ref * grad).sum().backward()
        (fused * grad).sum().backward()
        torch.testing.assert_close(xf.grad, xr.grad, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(fused_bn.weight.grad, ref_bn.weight.grad, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(fused_bn.bias.grad, ref_bn.bias.grad, rtol=1e-9, atol=1e-12)
        x = x * 1.3 + 0.1
    torch.testing.assert_close(fused_bn.running_mean, ref_bn.running_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fused_bn.running_var, ref_bn.running_var, rtol=1e-12, atol=1e-12)
    assert int(fused_bn.num_batches_tracked) == int(ref_bn.num_batches_tracked) == steps


@pytest.mark.parametrize("signs", ["positive", "mixed", "negative"])
def test_equals_plain_composition(signs):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 7, 6, dtype=torch.float64) * 2 + 0.5
    weight = torch.tensor([0.5, 1.0, 2.0, 0.7, 1.5, 0.1], dtype=torch.float64)
    if signs == "mixed":
        weight[::2] *= -1
    elif signs == "negative":
        weight = -weight
    compare(x, weight)


def test_other_axis_and_cumulative_momentum():
    torch.manual_seed(1)
    x = torch.randn(4, 9, 2, 5, dtype=torch.float64)
    weight = torch.tensor([1.0, -0.5, 0.3, 2.0, -1.0], dtype=torch.float64)
    compare(x, weight, momentum=None, dim=1, steps=3)


def test_ties_send_the_gradient_to_one_sample():
    """A channel constant over the pooled samples: one sample gets the pooled gradient, as max() does."""
    x = torch.zeros(2, 4, 3, dtype=torch.float64)
    x[..., 1] = torch.arange(8, dtype=torch.float64).reshape(2, 4)
    compare(x, torch.ones(3, dtype=torch.float64), dim=1, steps=1)


def test_eval_mode_uses_running_statistics():
    torch.manual_seed(2)
    bn = torch.nn.BatchNorm1d(4).double()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.weight.copy_(torch.tensor([1.0, -1.0, 0.5, 2.0]))
    bn.eval()
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    torch.testing.assert_close(pooled_bn_relu(x, bn), plain(x, bn))


def test_set_abstraction_gradients_equal_reference_path():
    torch.manual_seed(3)
    sa = SetAbstractionMSG(16, (0.3, 0.6), (8, 16), 6, ((8, 16), (8, 12))).double()
    xyz = torch.rand(2, 64, 3, dtype=torch.float64)
    feats = torch.randn(2, 64, 6, dtype=torch.float64, requires_grad=True)
    grads = []
    for forward in (sa.forward, sa.forward_reference):
        feats.grad = None
        sa.zero_grad()
        _, out = forward(xyz, feats)
        (out * torch.linspace(-1, 1, out.shape[-1], dtype=torch.float64)).sum().backward()
        grads.append([feats.grad.clone()] + [p.grad.clone() for p in sa.parameters()])
    for fast, ref in zip(*grads):
        torch.testing.assert_close(fast, ref, rtol=1e-8, atol=1e-10)


@requires_cuda
def test_cuda_equals_plain_composition():
    torch.manual_seed(4)
    x = torch.randn(2, 8, 16, 5, dtype=torch.float64, device="cuda")
    compare(x, torch.tensor([1.0, -0.5, 0.3, 2.0, -1.0], dtype=torch.float64, device="cuda"))
