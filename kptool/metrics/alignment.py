"""Dual alignment score (DAS) of Skeleton Merger (Shi et al., CVPR 2021).

Reproduces ``fwd_alignment_scores`` / ``bwd_alignment_scores`` of the authors'
``eval_keypointnet.py``; see docs/metrics.md for the definition. The pair sums
that the reference computes with a double loop over shapes are computed here
from label counts: over ordered pairs (self-pairs included) of S items with
label counts ``n_c``, the number of agreeing pairs is ``sum_c n_c^2``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from kptool.errors import KptoolError
from kptool.metrics._common import as_points, check_lengths, squared_distances


@dataclass(frozen=True)
class SlotAlignment:
    """Forward alignment of one predicted keypoint index (slot).

    ``forward`` is the share of ordered shape pairs (self-pairs included) on which the
    slot takes the same id, ``sum_c share_c^2``; ``labels`` are the ids it takes with their
    shares over the shapes, most common first; ``mean_distance`` is the mean distance from
    the slot's keypoint to its nearest annotation.
    """

    slot: int
    forward: float
    labels: tuple[tuple[int, float], ...]
    mean_distance: float


@dataclass(frozen=True)
class IdAlignment:
    """Backward alignment of one semantic id: the same quantities, the roles swapped.

    ``backward`` is the share of ordered pairs of its occurrences whose nearest predicted
    keypoint has the same index; ``slots`` are those indices with their shares, most common
    first; ``occurrences`` counts the annotations with this id.
    """

    id: int
    backward: float
    slots: tuple[tuple[int, float], ...]
    occurrences: int
    mean_distance: float


@dataclass(frozen=True)
class DASResult:
    """Forward alignment, backward alignment and their mean (``das``), all in [0, 1].

    ``by_slot`` and ``by_id`` break the two halves down: ``forward`` is the mean of the
    slots' ``forward``, ``backward`` the mean of the ids' ``backward``.
    """

    forward: float
    backward: float
    das: float
    by_slot: tuple[SlotAlignment, ...] = field(default=(), compare=False, repr=False)
    by_id: tuple[IdAlignment, ...] = field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, float]:
        """The three scores."""
        return {"forward": self.forward, "backward": self.backward, "das": self.das}

    def breakdown(self) -> dict[str, list[dict]]:
        """``by_slot`` and ``by_id`` as JSON-ready lists."""
        return {
            "by_slot": [{**asdict(s), "labels": [{"id": i, "share": v} for i, v in s.labels]} for s in self.by_slot],
            "by_id": [{**asdict(i), "slots": [{"slot": j, "share": v} for j, v in i.slots]} for i in self.by_id],
        }


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
    ``np.argmin`` in the reference. The result also holds both halves per slot
    and per id (``by_slot``, ``by_id``): which ids a slot lands on, and how often.
    """
    n = check_lengths("dual alignment score", predicted=predicted, annotated=annotated,
                      annotated_ids=annotated_ids)
    fwd_labels, fwd_dist, bwd_ids, bwd_index, bwd_dist = [], [], [], [], []
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
        fwd_dist.append(np.sqrt(d.min(axis=1)))
        bwd_ids.append(ids)
        bwd_index.append(np.argmin(d, axis=0))        # (M,)
        bwd_dist.append(np.sqrt(d.min(axis=0)))
    if len(counts) != 1:
        raise KptoolError("forward alignment needs the same number of keypoints on every shape "
                          f"(got {', '.join(map(str, sorted(counts)))}); detect with a fixed --num-keypoints")
    if not fwd_labels:
        raise KptoolError("dual alignment score needs annotated keypoints, and no shape has any")
    labels = np.stack(fwd_labels)                     # (S, K)
    distances = np.stack(fwd_dist)                    # (S, K)
    by_slot = tuple(SlotAlignment(j, *_shares(labels[:, j]), float(distances[:, j].mean()))
                    for j in range(labels.shape[1]))
    ids, index, dist = np.concatenate(bwd_ids), np.concatenate(bwd_index), np.concatenate(bwd_dist)
    by_id = []
    for i in np.unique(ids):
        mine = ids == i
        agreement, shares = _shares(index[mine])
        by_id.append(IdAlignment(int(i), agreement, shares, int(mine.sum()), float(dist[mine].mean())))
    forward = float(np.mean([slot.forward for slot in by_slot]))
    backward = float(np.mean([i.backward for i in by_id]))
    return DASResult(forward=forward, backward=backward, das=(forward + backward) / 2, by_slot=by_slot,
                     by_id=tuple(by_id))


def _shares(values: np.ndarray) -> tuple[float, tuple[tuple[int, float], ...]]:
    """``(n,)`` ints -> (share of agreeing ordered pairs, ``((value, share), ...)`` most common first).

    Over ordered pairs (self-pairs included) of n items with value counts ``n_c``,
    ``sum_c n_c^2`` pairs agree: the reference's double loop, counted.
    """
    uniq, count = np.unique(values, return_counts=True)
    share = count / values.shape[0]
    order = np.argsort(-count, kind="stable")
    return float(np.sum(share**2)), tuple((int(uniq[o]), float(share[o])) for o in order)
