"""The pull + geodesic-consistency push loss of dense semantic embeddings (paper 002, eqs. 1-4).

Over the annotated points of a batch (every keypoint of every shape, labelled by its
correspondence set), unordered pairs of distinct points are

- positive when they share a set: pull term ``||e_p - e_q||^2``;
- negative otherwise: push term ``relu(D(C_p, C_q) - ||e_p - e_q||)^2``, with D the
  mean geodesic distance between the two sets (:mod:`kptool.data.correspondences`).

Hard negative mining keeps, of the negatives, as many as there are positives (P): the
P most violating ones, i.e. the largest push terms (the authors' code ranks them on the
squared embedding distance instead while pushing on the unsquared one: a quirk not
reproduced). The loss is the mean over the kept pull and push terms together:
``(sum pull + lambda sum push) / (P + kept negatives)``. Negatives whose D is NaN
(sets never seen together on a training shape) are left out.
"""

from __future__ import annotations

import torch

from kptool.errors import KptoolError
from kptool.losses.registry import LOSSES


def geodesic_consistency_loss(embeddings: torch.Tensor, set_ids: torch.Tensor, set_distances: torch.Tensor,
                              push_weight: float = 1.0, hard_negatives: bool = True
                              ) -> tuple[torch.Tensor, dict[str, float]]:
    """Pull + geodesic-consistency push over the annotated points of a batch.

    Args:
        embeddings: ``(P, D)`` embeddings of the annotated points (any device).
        set_ids: ``(P,)`` int64 correspondence set of each point.
        set_distances: ``(P, I)`` row of D for each point's set, indexed by set id
            (``D[p, set_ids[q]]`` = D(C_p, C_q)); NaN where unknown.
        push_weight: lambda of eq. 4.
        hard_negatives: keep only the P most violating negatives (else every negative).

    Returns:
        ``(loss, {"pull", "push", "positives", "negatives"})``: pull and push are the
        means of their kept terms (0 when there are none).
    """
    if embeddings.ndim != 2 or set_ids.shape != embeddings.shape[:1]:
        raise KptoolError(f"geodesic_consistency_loss: embeddings (P, D) and set_ids (P,) expected, got "
                          f"{tuple(embeddings.shape)} and {tuple(set_ids.shape)}")
    if set_distances.ndim != 2 or set_distances.shape[0] != embeddings.shape[0]:
        raise KptoolError(f"geodesic_consistency_loss: set_distances must be (P, I), got {tuple(set_distances.shape)}")
    if len(set_ids) and int(set_ids.max()) >= set_distances.shape[1]:
        raise KptoolError(f"geodesic_consistency_loss: set id {int(set_ids.max())} has no column in set_distances "
                          f"({set_distances.shape[1]} columns)")
    n = embeddings.shape[0]
    a, b = torch.triu_indices(n, n, offset=1, device=embeddings.device)
    diff = embeddings[a] - embeddings[b]
    squared = (diff * diff).sum(-1)
    same = set_ids[a] == set_ids[b]
    pull = squared[same]
    target = set_distances[a, set_ids[b]].to(embeddings.dtype)
    negative = ~same & torch.isfinite(target)
    # the clamp keeps the square root's gradient finite for coincident embeddings
    distance = squared[negative].clamp_min(1e-12).sqrt()
    push = torch.relu(target[negative] - distance) ** 2
    if hard_negatives and push.numel() > pull.numel():
        push = torch.topk(push, pull.numel(), sorted=False).values
    terms = pull.numel() + push.numel()
    if terms == 0:
        return embeddings.sum() * 0.0, {"pull": 0.0, "push": 0.0, "positives": 0, "negatives": 0}
    loss = (pull.sum() + push_weight * push.sum()) / terms
    return loss, {"pull": float(pull.detach().mean()) if pull.numel() else 0.0,
                  "push": float(push.detach().mean()) if push.numel() else 0.0,
                  "positives": int(pull.numel()), "negatives": int(push.numel())}


@LOSSES.register("geodesic-consistency")
class GeodesicConsistency:
    """Pull within correspondence sets, push across them to their mean geodesic distance, hard negatives (paper 002).

    Args:
        push_weight: lambda (paper: 1).
        hard_negatives: keep only as many negatives as positives, the most violating.
    """

    def __init__(self, push_weight: float = 1.0, hard_negatives: bool = True):
        self.name = "geodesic-consistency"
        self.push_weight = float(push_weight)
        self.hard_negatives = bool(hard_negatives)

    def __call__(self, embeddings: torch.Tensor, set_ids: torch.Tensor,
                 set_distances: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return geodesic_consistency_loss(embeddings, set_ids, set_distances, self.push_weight, self.hard_negatives)
