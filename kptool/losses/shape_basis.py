"""Losses of the shape-basis keypoints (Fernandez-Labrador et al.) and of the USIP baseline.

Distances are Euclidean (not squared) by default, as in the authors' released code;
``squared=True`` uses the squared distances of the paper's equations (5) and (7).

- :func:`shape_basis_loss`: ``chamfer + coverage + 2 x inclusivity`` (weights configurable):
  Chamfer(keypoints, nodes) = mean of the two directed mean nearest distances; coverage =
  SmoothL1 (beta 1) between the bounding-box extents of the nodes and of the cloud;
  inclusivity = mean distance from each node to its nearest cloud point.
- :func:`probabilistic_chamfer`: USIP's ``log sigma_bar + d / sigma_bar`` in both directions.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from kptool.losses.registry import LOSSES
from kptool.ops import chamfer_distance


def box_extents(points: torch.Tensor) -> torch.Tensor:
    """``(B, N, 3)`` -> ``(B, 3)`` side lengths of each cloud's axis-aligned bounding box."""
    return points.max(dim=1).values - points.min(dim=1).values


def shape_basis_loss(keypoints: torch.Tensor, nodes: torch.Tensor, points: torch.Tensor, chamfer: float = 1.0,
                     coverage: float = 1.0, inclusivity: float = 2.0,
                     squared: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted sum and its parts; ``keypoints`` ``(B, K, 3)``, ``nodes`` ``(B, M, 3)``, ``points`` ``(B, N, 3)``.

    ``squared``: squared distances in the Chamfer and inclusivity terms (the paper's
    equations); the default, Euclidean, is the authors' code.
    """
    chf = 0.5 * chamfer_distance(keypoints, nodes, squared=squared)
    cov = F.smooth_l1_loss(box_extents(nodes), box_extents(points), beta=1.0)
    inc = chamfer_distance(nodes, points, squared=squared, two_sided=False)
    total = chamfer * chf + coverage * cov + inclusivity * inc
    # "loss_" names: validation logs metrics called coverage and inclusivity beside them
    return total, {"loss_chamfer": float(chf.detach()), "loss_coverage": float(cov.detach()),
                   "loss_inclusivity": float(inc.detach())}


def probabilistic_chamfer(a: torch.Tensor, sigma_a: torch.Tensor, b: torch.Tensor,
                          sigma_b: torch.Tensor) -> torch.Tensor:
    """USIP's probabilistic Chamfer loss between two keypoint sets in one frame.

    ``a`` ``(B, M, 3)`` with ``sigma_a`` ``(B, M)``, ``b`` ``(B, M', 3)`` with ``sigma_b``
    ``(B, M')``. Each point of one set is matched to its nearest point of the other;
    with ``d`` their distance and ``s = (sigma_i + sigma_j) / 2`` the term is
    ``log s + d / s``; the loss is the mean over both directions' points, summed.
    """
    d = torch.cdist(a, b)                                          # (B, M, M'): keypoint sets are small
    ab = d.min(dim=2)
    ba = d.min(dim=1)
    s_ab = 0.5 * (sigma_a + torch.gather(sigma_b, 1, ab.indices))
    s_ba = 0.5 * (sigma_b + torch.gather(sigma_a, 1, ba.indices))
    return (torch.log(s_ab) + ab.values / s_ab).mean() + (torch.log(s_ba) + ba.values / s_ba).mean()


@LOSSES.register("shape-basis")
class ShapeBasisLoss:
    """Paper 001's objective: Chamfer(keypoints, nodes) + coverage + 2 x inclusivity (weights configurable).

    Called as ``loss(keypoints, nodes, points) -> (scalar, parts)``. ``squared: true``
    takes the paper's squared distances (eqs. 5 and 7) instead of the code's Euclidean ones.
    """

    paired = False
    models = ("symmetric-basis",)

    def __init__(self, chamfer: float = 1.0, coverage: float = 1.0, inclusivity: float = 2.0,
                 squared: bool = False):
        self.name = "shape-basis"
        self.weights = {"chamfer": float(chamfer), "coverage": float(coverage), "inclusivity": float(inclusivity)}
        self.squared = bool(squared)

    def __call__(self, keypoints, nodes, points):
        return shape_basis_loss(keypoints, nodes, points, **self.weights, squared=self.squared)


@LOSSES.register("usip")
class USIPLoss:
    """USIP's objective on a siamese pair: probabilistic Chamfer + ``point_to_point`` x keypoint-to-cloud distance.

    Called as ``loss(a, sigma_a, b_back, sigma_b, first, second) -> (scalar, parts)``: the two
    views' keypoints and sigmas (``b_back`` turned back into the first view's frame) and the
    two views' points.
    """

    paired = False
    models = ("usip",)

    def __init__(self, point_to_point: float = 1.0):
        self.name = "usip"
        self.point_to_point = float(point_to_point)

    def __call__(self, a, sigma_a, b_back, sigma_b, first, second_back):
        pc = probabilistic_chamfer(a, sigma_a, b_back, sigma_b)
        pp = 0.5 * (chamfer_distance(a, first, squared=False, two_sided=False)
                    + chamfer_distance(b_back, second_back, squared=False, two_sided=False))
        return pc + self.point_to_point * pp, {"probabilistic_chamfer": float(pc.detach()),
                                               "point_to_point": float(pp.detach())}
