"""Keypoint mIoU: the Skeleton Merger (Euclidean) and KeypointNet (geodesic) variants.

Both pool over the dataset: with ``npos`` annotated keypoints in all, ``FP``
predictions farther than the threshold from every annotation and ``FN``
annotations farther than the threshold from every prediction,
``IoU = (npos - FN) / (npos + FP)``. See docs/metrics.md.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from kptool.errors import KptoolError
from kptool.metrics._common import as_points, check_lengths, check_scales, nearest_index, squared_distances
from kptool.metrics.curve import Curve

# eval_keypointnet.py of Skeleton Merger: np.linspace(0., 0.1) (50 values); papers quote 0.1.
SKELETON_MERGER_THRESHOLDS = np.linspace(0.0, 0.1, 50)
# KeypointNet's benchmark: geodesic thresholds 0, 0.01, ..., 0.1.
KEYPOINTNET_THRESHOLDS = np.linspace(0.0, 0.1, 11)


def _pooled_iou(pred_min: np.ndarray, gt_min: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """IoU at each threshold from per-prediction and per-annotation nearest distances."""
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1, 1)
    npos = gt_min.shape[0]
    fp = np.count_nonzero(pred_min[None, :] > t, axis=1)
    fn = np.count_nonzero(gt_min[None, :] > t, axis=1)
    return (npos - fn) / np.maximum(npos + fp, np.finfo(np.float64).eps)


def miou_curve(predicted: Sequence[np.ndarray], annotated: Sequence[np.ndarray],
               thresholds: Sequence[float] = SKELETON_MERGER_THRESHOLDS,
               points: Sequence[np.ndarray] | None = None,
               scales: Sequence[float] | None = None) -> Curve:
    """Euclidean keypoint IoU over thresholds (Skeleton Merger's ``mIoU``).

    Args:
        predicted: per shape, ``(K_i, 3)`` predicted keypoints.
        annotated: per shape, ``(M_i, 3)`` annotated keypoints (same frame).
        thresholds: ``(T,)`` distance thresholds, in the frame the distances are measured in.
        points: per shape, ``(N_i, 3)`` cloud; when given, predictions are first
            moved to their nearest cloud point, as the reference does.
        scales: per shape, distances are divided by it before thresholding; pass each
            shape's ``Transform.scale`` to measure in the original frame.

    Returns:
        a :class:`Curve` with ``x = thresholds`` and ``y`` the pooled IoU. Shapes
        without annotations take no part.
    """
    n = check_lengths("mIoU", predicted=predicted, annotated=annotated)
    if points is not None:
        check_lengths("mIoU", predicted=predicted, points=points)
    scale = check_scales(scales, n)
    pred_min, gt_min = [], []
    for s in range(n):
        gt = as_points(annotated[s], f"annotated keypoints of shape {s}")
        if gt.shape[0] == 0:
            continue
        pred = as_points(predicted[s], f"predicted keypoints of shape {s}")
        if points is not None:
            cloud = as_points(points[s], f"points of shape {s}")
            pred = cloud[nearest_index(pred, cloud)]
        d = np.sqrt(squared_distances(pred, gt)) / scale[s]      # (K, M)
        pred_min.append(d.min(axis=1) if d.shape[0] else np.zeros(0))
        gt_min.append(d.min(axis=0) if d.shape[0] else np.full(gt.shape[0], np.inf))
    if not gt_min:
        raise KptoolError("mIoU needs annotated keypoints, and no shape has any")
    x = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    return Curve(x, _pooled_iou(np.concatenate(pred_min), np.concatenate(gt_min), x))


def geodesic_miou_curve(predicted_index: Sequence[np.ndarray], geodesic: Sequence[np.ndarray],
                        thresholds: Sequence[float] = KEYPOINTNET_THRESHOLDS,
                        scales: Sequence[float] | None = None) -> Curve:
    """Geodesic keypoint IoU over thresholds (KeypointNet's ``eval_det_cls_iou``).

    Args:
        predicted_index: per shape, ``(K_i,)`` int indices of the cloud points taken as
            predictions (snap predictions with their nearest cloud point first).
        geodesic: per shape, ``(M_i, N_i)`` geodesic distances from each annotated
            keypoint to every cloud point (``inf`` where unreachable).
        thresholds: ``(T,)`` geodesic distance thresholds.
        scales: per shape, distances are divided by it before thresholding.
    """
    n = check_lengths("geodesic mIoU", predicted_index=predicted_index, geodesic=geodesic)
    scale = check_scales(scales, n)
    pred_min, gt_min = [], []
    for s in range(n):
        table = np.asarray(geodesic[s], dtype=np.float64)
        if table.ndim != 2:
            raise KptoolError(f"geodesic table of shape {s}: expected (M, N), got {table.shape}")
        if table.shape[0] == 0:
            continue
        idx = np.asarray(predicted_index[s], dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= table.shape[1]):
            raise KptoolError(f"shape {s}: predicted point index out of range 0..{table.shape[1] - 1}")
        d = table[:, idx] / scale[s]                            # (M, K)
        pred_min.append(d.min(axis=0) if d.shape[1] else np.zeros(0))
        gt_min.append(d.min(axis=1) if d.shape[1] else np.full(table.shape[0], np.inf))
    if not gt_min:
        raise KptoolError("geodesic mIoU needs annotated keypoints, and no shape has any")
    x = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    return Curve(x, _pooled_iou(np.concatenate(pred_min), np.concatenate(gt_min), x))
