"""Repeatability of a detector under perturbations of the input cloud (paper 000, Fig. 8).

Detect on each clean cloud, perturb the cloud, detect again, map the new
keypoints back into the clean cloud's frame, and count a clean keypoint as
repeatable when it moved less than ``threshold``. Ordered detectors compare
keypoint i with keypoint i; unordered ones (classical baselines) with the
nearest re-detected keypoint. See docs/metrics.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from kptool.errors import KptoolError
from kptool.metrics._common import as_points, check_scales, squared_distances
from kptool.metrics.curve import Curve

if TYPE_CHECKING:   # kptool.detect imports torch: the metrics stay light for the CLI
    from kptool.detect.base import Detector

PERTURBATIONS = ("noise", "rotation-up", "rotation-so3", "decimation")
# Levels: noise sigma (prepared-frame units), rotation angle (degrees), share of points dropped.
DEFAULT_LEVELS: dict[str, tuple[float, ...]] = {
    "noise": (0.0, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1),
    "rotation-up": (0.0, 15.0, 30.0, 45.0, 90.0, 180.0),
    "rotation-so3": (0.0, 15.0, 30.0, 45.0, 90.0, 180.0),
    "decimation": (0.0, 0.1, 0.25, 0.5, 0.75, 0.9),
}
UP = np.array([0.0, 1.0, 0.0])  # the prepared frame is y-up


def perturb(points: np.ndarray, perturbation: str, level: float,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One random perturbation of a ``(N, 3)`` cloud.

    Returns the perturbed ``(N', 3)`` float32 cloud and the ``(3, 3)`` rotation R
    that was applied (``p' = R p``; identity unless rotating). Rotations are about
    the origin by exactly ``level`` degrees: about the y (up) axis with a random
    sign for ``rotation-up``, about a uniformly random axis for ``rotation-so3``.
    ``decimation`` keeps a random ``1 - level`` share of the points (at least one).
    """
    p = np.asarray(points, dtype=np.float64)
    rot = np.eye(3)
    if perturbation == "noise":
        p = p + rng.normal(0.0, level, size=p.shape)
    elif perturbation in ("rotation-up", "rotation-so3"):
        if perturbation == "rotation-up":
            axis = UP * rng.choice([-1.0, 1.0])
        else:
            axis = rng.normal(size=3)
            axis /= np.linalg.norm(axis)
        from scipy.spatial.transform import Rotation   # here: scipy.spatial is slow to import

        rot = Rotation.from_rotvec(np.deg2rad(level) * axis).as_matrix()
        p = p @ rot.T
    elif perturbation == "decimation":
        if not 0.0 <= level < 1.0:
            raise KptoolError(f"decimation level must be in [0, 1), got {level}")
        keep = max(1, int(round(p.shape[0] * (1.0 - level))))
        p = p[np.sort(rng.choice(p.shape[0], keep, replace=False))]
    else:
        raise KptoolError(f"unknown perturbation {perturbation!r}: expected one of {', '.join(PERTURBATIONS)}")
    return p.astype(np.float32), rot


def moved_distances(before: np.ndarray, after: np.ndarray, ordered: bool) -> np.ndarray:
    """``(K, 3)`` clean keypoints and ``(K', 3)`` re-detected ones (same frame) -> ``(K,)``
    distance each clean keypoint moved: to keypoint i (ordered) or to the nearest one."""
    a, b = as_points(before, "keypoints"), as_points(after, "re-detected keypoints")
    if b.shape[0] == 0:
        return np.full(a.shape[0], np.inf)
    if ordered:
        if a.shape[0] != b.shape[0]:
            raise KptoolError(f"ordered detector returned {b.shape[0]} keypoints after perturbation, "
                              f"{a.shape[0]} before")
        return np.linalg.norm(a - b, axis=1)
    return np.sqrt(squared_distances(a, b).min(axis=1))


def repeatability(detector: Detector, clouds: Sequence[np.ndarray], perturbation: str = "noise",
                  levels: Sequence[float] | None = None, threshold: float = 0.1, seed: int = 0,
                  scales: Sequence[float] | None = None) -> Curve:
    """Share of repeatable keypoints at each perturbation level, pooled over all clouds.

    Args:
        detector: a :class:`~kptool.detect.base.Detector` (``ordered`` decides the matching).
        clouds: ``(N_i, 3)`` clouds in the prepared frame.
        perturbation: one of ``PERTURBATIONS``.
        levels: ``(L,)`` levels (defaults: ``DEFAULT_LEVELS[perturbation]``).
        threshold: a keypoint is repeatable when it moved less than this.
        seed: seeds the perturbations (level i uses ``default_rng([seed, i])``).
        scales: per cloud, moved distances are divided by it (pass ``Transform.scale``
            to put ``threshold`` in the original frame).

    Returns:
        a :class:`Curve` with ``x = levels``.
    """
    if perturbation not in PERTURBATIONS:
        raise KptoolError(f"unknown perturbation {perturbation!r}: expected one of {', '.join(PERTURBATIONS)}")
    if not clouds:
        raise KptoolError("repeatability: no clouds")
    x = np.asarray(DEFAULT_LEVELS[perturbation] if levels is None else levels, dtype=np.float64).reshape(-1)
    scale = check_scales(scales, len(clouds))
    clean = detector.detect_batch([np.asarray(c, dtype=np.float32) for c in clouds])
    if sum(len(k) for k in clean) == 0:
        raise KptoolError(f"repeatability: {detector.name} found no keypoints on the clean clouds")
    values = []
    for i, level in enumerate(x):
        rng = np.random.default_rng([seed, i])
        moved = [perturb(c, perturbation, float(level), rng) for c in clouds]
        again = detector.detect_batch([m[0] for m in moved])
        hits = 0
        for s, (kp, kp2, (_, rot)) in enumerate(zip(clean, again, moved)):
            back = np.asarray(kp2, dtype=np.float64).reshape(-1, 3) @ rot   # undo p' = R p
            hits += int(np.count_nonzero(moved_distances(kp, back, detector.ordered) / scale[s] < threshold))
        values.append(hits / sum(len(k) for k in clean))
    return Curve(x, np.asarray(values))
