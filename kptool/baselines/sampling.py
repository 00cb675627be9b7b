"""Keypoints by sampling: farthest points and uniformly random points."""

from __future__ import annotations

import numpy as np

from kptool.errors import KptoolError


def farthest_points(points: np.ndarray, k: int, start_index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``k`` farthest points of a ``(N, 3)`` cloud via :func:`kptool.ops.farthest_point_sampling`.

    Returns the ``(k,)`` indices and a ``(N,)`` score that ranks them in sampling order.
    """
    import torch

    from kptool.ops import farthest_point_sampling

    if not 0 < k <= points.shape[0]:
        raise KptoolError(f"fps: cannot sample {k} points from a cloud of {points.shape[0]}")
    idx = farthest_point_sampling(torch.as_tensor(points, dtype=torch.float32)[None], k,
                                  start_index=start_index)[0].cpu().numpy().astype(np.int64)
    score = np.zeros(points.shape[0])
    score[idx] = np.arange(k, 0, -1)   # earlier samples first when selecting
    return idx, score


def random_points(points: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``k`` distinct points drawn uniformly with ``numpy.random.default_rng(seed)``.

    The same seed and cloud size give the same indices on every call.
    """
    n = points.shape[0]
    if not 0 < k <= n:
        raise KptoolError(f"random: cannot draw {k} points from a cloud of {n}")
    idx = np.random.default_rng(seed).choice(n, k, replace=False)
    score = np.zeros(n)
    score[idx] = np.arange(k, 0, -1)
    return idx, score
