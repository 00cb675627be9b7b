"""Dual alignment score (DAS) of Skeleton Merger (Shi et al., CVPR 2021).

Reproduces ``fwd_alignment_scores`` / ``bwd_alignment_scores`` of the authors'
``eval_keypointnet.py``; see docs/metrics.md for the definition. The pair sums
that the reference computes with a double loop over shapes are computed here
from label counts: over ordered pairs (self-pairs included) of S items with
label counts ``n_c``, the number of agreeing pairs is ``sum_c n_c^2``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from kptool.errors import KptoolError
from kptool.metrics._common import as_points, check_lengths, squared_distances


@dataclass(frozen=True)
class DASResult:
    """Forward alignment, backward alignment and their mean (``das``), all in [0, 1]."""

    forward: float
    backward: float
    das: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _agreeing_pairs(groups: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """For each group g, ``sum_c n_{g,c}^2`` where ``n_{g,c}`` counts label c in group g.

    ``groups`` ``(P,)`` int in [0, G), ``labels`` ``(P,)`` int -> ``(G,)`` float64.
    """
    _, label_index = np.unique(labels, return_inverse=True)
    num_labels = int(label_index.max()) + 1
    keys, counts = np.unique(groups.astype(np.int64) * num_labels + label_index, return_counts=True)
    return np.bincount(keys // num_labels, weights=counts.astype(np.float64) ** 2,
                       minlength=int(groups.max()) + 1)


def dual_alignment_score(predicted: Sequence[np.ndarray], annotated: Sequence[np.ndarray],
                         annotated_ids: Sequence[np.ndarray]) -> DASResult:
    """Forward, backward and dual alignment scores over a set of shapes.

    Args:
        predicted: per shape, ``(K, 3)`` predicted keypoints, ordered (index = slot);
            the same K on every shape.
        annotated: per shape, ``(M_i, 3)`` annotated keypoints in the same frame.
        annotated_ids: per shape, ``(M_i,)`` int semantic ids of the annotations.

    Forward: each predicted keypoint takes the id of its nearest annotation;
    the score is the share of (ordered shape pair incl. self-pairs, index) with
    equal ids. Backward: each annotation takes the index of its nearest
    predicted keypoint; per id, the share of ordered pairs of its occurrences
    (self-pairs included) with equal indices, then the mean over ids. Shapes
    without annotations take no part. Ties go to the lowest index, as with
    ``np.argmin`` in the reference.
    """
    n = check_lengths("dual alignment score", predicted=predicted, annotated=annotated,
                      annotated_ids=annotated_ids)
    fwd_labels, bwd_ids, bwd_index = [], [], []
    counts = set()
    for s in range(n):
        pred = as_points(predicted[s], f"predicted keypoints of shape {s}")
        gt = as_points(annotated[s], f"annotated keypoints of shape {s}")
        ids = np.asarray(annotated_ids[s]).astype(np.int64).reshape(-1)
        if ids.shape[0] != gt.shape[0]:
            raise KptoolError(f"shape {s}: {gt.shape[0]} annotated keypoints but {ids.shape[0]} ids")
        if pred.shape[0] == 0:
            raise KptoolError(f"shape {s}: no predicted keypoints")
        counts.add(pred.shape[0])
        if gt.shape[0] == 0:
            continue
        d = squared_distances(pred, gt)               # (K, M)
        fwd_labels.append(ids[np.argmin(d, axis=1)])  # (K,)
        bwd_ids.append(ids)
        bwd_index.append(np.argmin(d, axis=0))        # (M,)
    if len(counts) != 1:
        raise KptoolError("forward alignment needs the same number of keypoints on every shape "
                          f"(got {', '.join(map(str, sorted(counts)))}); detect with a fixed --num-keypoints")
    if not fwd_labels:
        raise KptoolError("dual alignment score needs annotated keypoints, and no shape has any")
    labels = np.stack(fwd_labels)                     # (S, K)
    s_count, k = labels.shape
    slots = np.broadcast_to(np.arange(k), labels.shape).reshape(-1)
    forward = _agreeing_pairs(slots, labels.reshape(-1)).sum() / (s_count * s_count * k)

    ids = np.concatenate(bwd_ids)
    _, id_group = np.unique(ids, return_inverse=True)
    agree = _agreeing_pairs(id_group, np.concatenate(bwd_index))
    occurrences = np.bincount(id_group).astype(np.float64)
    backward = float(np.mean(agree / occurrences**2))
    forward = float(forward)
    return DASResult(forward=forward, backward=backward, das=(forward + backward) / 2)
