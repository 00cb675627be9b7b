"""``max over samples (ReLU (BatchNorm x))`` without normalising every sample: an exact rewrite.

The last layer of a PointNet++ set-abstraction scale normalises a ``(B, S, K, C)``
tensor, applies ReLU and max-pools over the K neighbours: the largest tensors of
the network go through three full passes forward and three backward. BatchNorm's
affine map and ReLU are monotonic in each channel (increasing where the BatchNorm
weight is >= 0, decreasing where it is < 0), so the pooled value is the same affine
map and ReLU applied to the channel's max (or min) over the K samples. Only the
batch statistics need every sample, and their gradient is an affine function of
the input. So, in training mode, forward reads the input twice (the statistics, then
the max; also the min for channels with a negative weight) and writes nothing of its
size, and backward writes its gradient once; eval mode, with running statistics, is
the plain composition.

Values, gradients and the running-statistics update equal those of
``relu(bn(x)).max(dim=2).values`` up to float rounding (tests/test_pooled_norm.py),
except where the choice of the pooled sample is a tie: a channel whose BatchNorm
weight is exactly 0 (every sample gives the same output) takes its weight gradient
from the channel's max, where ``max()`` takes an arbitrary sample.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class _PooledBatchNormReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps):
        # x (R, K, C) contiguous; statistics over all R * K rows, running ones updated as BatchNorm does
        mean, var = torch.batch_norm_update_stats(x.view(-1, x.shape[-1]), running_mean, running_var, momentum)
        invstd = torch.rsqrt(var + eps)
        increasing = weight >= 0
        if bool(increasing.all()):
            pooled, index = x.max(dim=1)                             # (R, C)
        else:
            vmax, imax = x.max(dim=1)
            vmin, imin = x.min(dim=1)
            pooled, index = torch.where(increasing, vmax, vmin), torch.where(increasing, imax, imin)
        centred = pooled - mean
        z = centred * (weight * invstd) + bias
        ctx.save_for_backward(x, weight, mean, invstd, centred, index, z > 0)
        return torch.relu(z)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, mean, invstd, centred, index, active = ctx.saved_tensors
        rows = x.shape[0] * x.shape[1]
        gz = grad_out * active                                        # (R, C)
        grad_bias = gz.sum(0)
        grad_weight = (gz * centred).sum(0) * invstd
        grad_pooled = gz * (weight * invstd)
        # Through the statistics: d mean / dx = 1 / rows, d var / dx = 2 (x - mean) / rows
        # (var's own dependence on the mean vanishes at the batch mean).
        grad_mean = -grad_pooled.sum(0)
        grad_var = -0.5 * (gz * centred).sum(0) * weight * invstd ** 3
        a = 2.0 * grad_var / rows
        grad_x = torch.addcmul(grad_mean / rows - a * mean, x, a)
        grad_x.scatter_add_(1, index.unsqueeze(1), grad_pooled.unsqueeze(1))
        return grad_x, grad_weight, grad_bias, None, None, None, None


def bn_relu(x: torch.Tensor, bn: nn.BatchNorm1d) -> torch.Tensor:
    """BatchNorm over every leading position of a channel-last tensor, then ReLU."""
    # in place: BatchNorm's backward needs its input, not its output
    return torch.relu_(bn(x.reshape(-1, x.shape[-1]))).reshape(x.shape)


def pooled_bn_relu(x: torch.Tensor, bn: nn.BatchNorm1d, dim: int = 2) -> torch.Tensor:
    """``relu(bn(x)).max(dim).values`` for a channel-last ``x`` (BatchNorm over all leading positions).

    Args:
        x: ``(..., K, ..., C)`` with the pooled axis ``dim`` (not the last).
        bn: the BatchNorm1d of the C channels; in training mode its running statistics
            are updated as ``bn`` itself would.

    Returns:
        ``x`` without the ``dim`` axis.
    """
    dim = dim % x.dim()
    if dim == x.dim() - 1:
        raise ValueError("pooled_bn_relu pools over a position axis, not the channel axis (the last)")
    if not bn.training and bn.track_running_stats:
        return bn_relu(x, bn).max(dim=dim).values
    moved = x.movedim(dim, -2)
    lead = moved.shape[:-2]
    flat = moved.reshape(-1, moved.shape[-2], moved.shape[-1]).contiguous()
    channels = flat.shape[-1]
    if flat.shape[0] * flat.shape[1] < 2:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
    weight = bn.weight if bn.affine else torch.ones(channels, dtype=x.dtype, device=x.device)
    bias = bn.bias if bn.affine else torch.zeros(channels, dtype=x.dtype, device=x.device)
    running_mean = running_var = None
    momentum = 0.0
    if bn.track_running_stats:
        bn.num_batches_tracked.add_(1)
        momentum = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        running_mean, running_var = bn.running_mean, bn.running_var
    out = _PooledBatchNormReLU.apply(flat, weight, bias, running_mean, running_var, momentum, bn.eps)
    return out.reshape(*lead, channels)
