"""The detector object every baseline returns (see :class:`kptool.detect.base.Detector`)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from kptool.errors import KptoolError

# (N, 3) float64 points -> (indices of the detected points, (N,) score of every point)
Finder = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def select(detected: np.ndarray, score: np.ndarray, k: int | None) -> np.ndarray:
    """Indices of the keypoints to return: all ``detected`` when ``k`` is None, else exactly k.

    With k, detected points are taken by decreasing score; if fewer than k were
    detected, the remaining slots are filled with the undetected points of highest
    score. Ties go to the lower index.
    """
    detected = np.asarray(detected, dtype=np.int64)
    if k is None:
        return detected
    if k > score.shape[0]:
        raise KptoolError(f"cannot pick {k} keypoints from a cloud of {score.shape[0]} points")
    is_detected = np.zeros(score.shape[0], dtype=bool)
    is_detected[detected] = True
    # lexsort: last key first; detected before undetected, then by score, then by index
    order = np.lexsort((np.arange(score.shape[0]), -score, ~is_detected))
    return order[:k]


class Baseline:
    """A classical detector: unordered keypoints picked among the cloud's points.

    Attributes:
        name: the method name (``iss``, ``harris3d``, ``fps``, ``random``).
        ordered: always False (index i carries no meaning across shapes).
        num_keypoints: fixed count, or None for "whatever the method finds".
    """

    ordered = False

    def __init__(self, name: str, finder: Finder, num_keypoints: int | None):
        self.name = name
        self.num_keypoints = num_keypoints
        self._finder = finder

    def indices(self, points: np.ndarray) -> np.ndarray:
        """``(N, 3)`` cloud -> ``(K,)`` int64 indices of the keypoints in it."""
        p = np.asarray(points, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 3:
            raise KptoolError(f"{self.name}: expected a (N, 3) point cloud, got shape {p.shape}")
        if not np.isfinite(p).all():
            raise KptoolError(f"{self.name}: the point cloud contains NaN or inf")
        detected, score = self._finder(p)
        return select(detected, score, self.num_keypoints)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """``(N, 3)`` cloud -> ``(K, 3)`` float32 keypoints (points of the cloud)."""
        return np.asarray(points, dtype=np.float32)[self.indices(points)]

    def detect_batch(self, clouds: list[np.ndarray]) -> list[np.ndarray]:
        return [self(c) for c in clouds]

    def __repr__(self) -> str:
        return f"Baseline({self.name!r}, num_keypoints={self.num_keypoints})"
