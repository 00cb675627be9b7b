"""Part correspondence ratio on ShapeNet-Part-style labels (paper 000, Table 3).

No official code exists; the definition implemented (docs/metrics.md): every
predicted keypoint takes the part label of the cloud point nearest to it; for
keypoint index k, over the shapes that have an index k, the share of shapes
whose label is the most common one; the ratio is the mean over indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from kptool.errors import KptoolError
from kptool.metrics._common import as_points, check_lengths, nearest_index


@dataclass(frozen=True)
class PartCorrespondence:
    """``ratio`` (mean over indices) and ``per_index`` ``(K,)`` shares in [0, 1]."""

    ratio: float
    per_index: np.ndarray

    def to_dict(self) -> dict:
        return {"ratio": self.ratio, "per_index": self.per_index.tolist()}


def keypoint_part_labels(keypoints: np.ndarray, points: np.ndarray, point_labels: np.ndarray) -> np.ndarray:
    """``(K, 3)`` keypoints, ``(N, 3)`` cloud, ``(N,)`` labels -> ``(K,)`` label of the nearest point."""
    cloud = as_points(points, "points")
    labels = np.asarray(point_labels).reshape(-1)
    if labels.shape[0] != cloud.shape[0]:
        raise KptoolError(f"{cloud.shape[0]} points but {labels.shape[0]} part labels")
    return labels[nearest_index(as_points(keypoints, "keypoints"), cloud)].astype(np.int64)


def part_correspondence_ratio(predicted: Sequence[np.ndarray], points: Sequence[np.ndarray],
                              point_labels: Sequence[np.ndarray]) -> PartCorrespondence:
    """Mean over keypoint indices of the frequency of the index's most common part label.

    Args:
        predicted: per shape, ``(K_i, 3)`` keypoints; index k is the same slot on every shape.
        points: per shape, ``(N_i, 3)`` cloud (same frame as the keypoints).
        point_labels: per shape, ``(N_i,)`` int part labels (0, "no part", counts as a label).
    """
    n = check_lengths("part correspondence", predicted=predicted, points=points, point_labels=point_labels)
    per_shape = [keypoint_part_labels(predicted[s], points[s], point_labels[s]) for s in range(n)]
    k_max = max(len(lab) for lab in per_shape)
    if k_max == 0:
        raise KptoolError("part correspondence: no predicted keypoints")
    slot = np.concatenate([np.arange(len(lab)) for lab in per_shape])
    label = np.concatenate(per_shape)
    _, label_index = np.unique(label, return_inverse=True)
    table = np.zeros((k_max, int(label_index.max()) + 1), dtype=np.int64)   # (K, labels) counts
    np.add.at(table, (slot, label_index), 1)
    per_index = table.max(axis=1) / table.sum(axis=1)
    return PartCorrespondence(float(per_index.mean()), per_index)
