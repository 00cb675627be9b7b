"""ParAE's pretext objective (Eckart et al., CVPR 2021, eqs. 5-10): per-point logits over J
partitions define a Gaussian mixture whose likelihood of the same points is the loss.

``gamma = softmax(logits)`` softly assigns point i to partition j; the mixture's weights,
means and full covariances are the gamma-weighted statistics of the points (eqs. 5-7),
plus a small ridge ``eps I`` that keeps a covariance positive definite when its points
are few or coplanar. The loss is the mean negative log-likelihood of the points under
that mixture (eq. 10 divided by N), computed with log-sum-exp over the components and
the log-determinant from a Cholesky factor.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from kptool.ops._checks import check_points, check_same_device

DEFAULT_RIDGE = 1e-4
# Partitions that receive no point at all (possible only for extreme logits) would divide
# by zero; their weight is tiny anyway, so a floor on the soft count changes nothing else.
MIN_COUNT = 1e-8


class Mixture(NamedTuple):
    """A batch of 3D Gaussian mixtures: ``weights (B, J)``, ``means (B, J, 3)``, ``covariances (B, J, 3, 3)``."""

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor


def _check_logits(points: torch.Tensor, logits: torch.Tensor) -> None:
    check_points("points", points)
    check_points("logits", logits, batch=points.shape[0], channels=None)
    if logits.shape[1] != points.shape[1]:
        raise ValueError(f"logits must be (B, N, J) for points {tuple(points.shape)}, got {tuple(logits.shape)}")
    check_same_device(points=points, logits=logits)


def mixture_from_logits(points: torch.Tensor, logits: torch.Tensor, ridge: float = DEFAULT_RIDGE) -> Mixture:
    """The mixture that per-point logits imply (eqs. 5-7).

    Args:
        points: ``(B, N, 3)``.
        logits: ``(B, N, J)`` scores of each point for each partition.
        ridge: added to every covariance's diagonal.

    Returns:
        :class:`Mixture` with ``weights (B, J)`` summing to 1 per shape.
    """
    _check_logits(points, logits)
    gamma = torch.softmax(logits, dim=-1).to(points.dtype)                        # (B, N, J)
    counts = gamma.sum(dim=1).clamp_min(MIN_COUNT)                                # (B, J)
    weights = counts / points.shape[1]
    means = torch.einsum("bnj,bnk->bjk", gamma, points) / counts[..., None]       # (B, J, 3)
    centred = points[:, None, :, :] - means[:, :, None, :]                        # (B, J, N, 3)
    cov = torch.einsum("bnj,bjnk,bjnl->bjkl", gamma, centred, centred) / counts[..., None, None]
    eye = torch.eye(3, dtype=points.dtype, device=points.device)
    return Mixture(weights, means, cov + ridge * eye)


def mixture_log_likelihood(points: torch.Tensor, mixture: Mixture) -> torch.Tensor:
    """``(B, N)`` log-density of each point under its shape's mixture.

    ``log sum_j pi_j N(p_i; mu_j, Sigma_j)`` by log-sum-exp; ``Sigma_j = L L^T`` (Cholesky),
    ``log det Sigma_j = 2 sum log diag L`` and the Mahalanobis term from a triangular solve.
    """
    check_points("points", points)
    chol = torch.linalg.cholesky(mixture.covariances)                             # (B, J, 3, 3)
    log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)     # (B, J)
    centred = points[:, None, :, :] - mixture.means[:, :, None, :]                # (B, J, N, 3)
    solved = torch.linalg.solve_triangular(chol, centred.transpose(-1, -2), upper=False)  # (B, J, 3, N)
    mahalanobis = (solved ** 2).sum(dim=-2)                                       # (B, J, N)
    log_normal = -0.5 * (3 * math.log(2 * math.pi) + log_det[..., None] + mahalanobis)
    log_joint = torch.log(mixture.weights.clamp_min(MIN_COUNT))[..., None] + log_normal
    return torch.logsumexp(log_joint, dim=1)                                      # (B, N)


def gmm_nll(points: torch.Tensor, logits: torch.Tensor, ridge: float = DEFAULT_RIDGE) -> torch.Tensor:
    """ParAE's loss per shape: ``(B,)`` mean negative log-likelihood of the points under the
    mixture their own logits imply (:func:`mixture_from_logits`, :func:`mixture_log_likelihood`)."""
    return -mixture_log_likelihood(points, mixture_from_logits(points, logits, ridge)).mean(dim=1)
