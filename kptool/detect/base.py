"""What every keypoint detector looks like, learned or classical.

A detector maps one point cloud in the prepared frame to keypoints in the same
frame. Learned detectors (``kptool.models``) return a fixed number of *ordered*
keypoints (index = semantic slot); classical baselines (ISS, Harris 3D, FPS,
random) return unordered ones, possibly a varying number.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Detector(Protocol):
    name: str
    ordered: bool

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """``(N, 3)`` float points -> ``(K, 3)`` float32 keypoints."""
        ...

    def detect_batch(self, clouds: list[np.ndarray]) -> list[np.ndarray]:
        """Detect on many clouds (learned detectors batch them)."""
        ...
