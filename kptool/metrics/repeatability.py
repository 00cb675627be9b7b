"""Repeatability of a detector under perturbations of the input cloud (paper 000, Fig. 8).

Detect on each clean cloud, perturb the cloud, detect again, map the new
keypoints back into the clean cloud's frame, and count a clean keypoint as
repeatable when it moved less than ``threshold``. Ordered detectors compare
keypoint i with keypoint i; unordered ones (classical baselines) with the
nearest re-detected keypoint. With ``normalize``, clouds go through the
detector's frame as in ``kptool detect`` (centred, scaled, normalised), which is
what makes a detector repeatable under ``translation`` and ``scale``.
See docs/metrics.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from kptool.core.transform import Transform, detection_frame
from kptool.errors import KptoolError
from kptool.metrics._common import as_points, check_scales, squared_distances
from kptool.metrics.curve import Curve

if TYPE_CHECKING:   # kptool.detect imports torch: the metrics stay light for the CLI
    from kptool.detect.base import Detector

PERTURBATIONS = ("noise", "rotation-up", "rotation-so3", "decimation", "translation", "scale")
# Levels: noise sigma (prepared-frame units), rotation angle (degrees), share of points dropped,
# translation distance (prepared-frame units), scale factor.
DEFAULT_LEVELS: dict[str, tuple[float, ...]] = {
    "noise": (0.0, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1),
    "rotation-up": (0.0, 15.0, 30.0, 45.0, 90.0, 180.0),
    "rotation-so3": (0.0, 15.0, 30.0, 45.0, 90.0, 180.0),
    "decimation": (0.0, 0.1, 0.25, 0.5, 0.75, 0.9),
    "translation": (0.0, 0.1, 0.5, 1.0, 10.0, 100.0),
    "scale": (0.01, 0.1, 0.5, 1.0, 2.0, 10.0, 100.0),
}
UP = np.array([0.0, 1.0, 0.0])  # the prepared frame is y-up


def perturb(points: np.ndarray, perturbation: str, level: float,
            rng: np.random.Generator) -> tuple[np.ndarray, Transform]:
    """One random perturbation of a ``(N, 3)`` cloud.

    Returns the perturbed ``(N', 3)`` float32 cloud and the similarity transform T
    that was applied (``p' = T(p)``; identity for noise and decimation). Rotations are
    about the origin by exactly ``level`` degrees: about the y (up) axis with a random
    sign for ``rotation-up``, about a uniformly random axis for ``rotation-so3``.
    ``decimation`` keeps a random ``1 - level`` share of the points (at least one).
    ``translation`` moves the cloud by ``level`` in a uniformly random direction;
    ``scale`` multiplies it by ``level`` about the origin.
    """
    p = np.asarray(points, dtype=np.float64)
    transform = Transform.identity()
    if perturbation == "noise":
        p = p + rng.normal(0.0, level, size=p.shape)
    elif perturbation in ("rotation-up", "rotation-so3"):
        if perturbation == "rotation-up":
            axis = UP * rng.choice([-1.0, 1.0])
        else:
            axis = _random_direction(rng)
        from scipy.spatial.transform import Rotation   # here: scipy.spatial is slow to import

        transform = Transform.from_parts(rotation=Rotation.from_rotvec(np.deg2rad(level) * axis).as_matrix())
    elif perturbation == "translation":
        transform = Transform.from_parts(offset=level * _random_direction(rng))
    elif perturbation == "scale":
        if not level > 0:
            raise KptoolError(f"scale level must be positive, got {level}")
        transform = Transform.from_parts(scale=level)
    elif perturbation == "decimation":
        if not 0.0 <= level < 1.0:
            raise KptoolError(f"decimation level must be in [0, 1), got {level}")
        keep = max(1, int(round(p.shape[0] * (1.0 - level))))
        p = p[np.sort(rng.choice(p.shape[0], keep, replace=False))]
    else:
        raise KptoolError(f"unknown perturbation {perturbation!r}: expected one of {', '.join(PERTURBATIONS)}")
    return transform.apply(p).astype(np.float32), transform


def _random_direction(rng: np.random.Generator) -> np.ndarray:
    axis = rng.normal(size=3)
    return axis / np.linalg.norm(axis)


def detect_in_frame(detector: Detector, clouds: Sequence[np.ndarray], normalize: str | None) -> list[np.ndarray]:
    """Detect on clouds as ``kptool detect`` does on raw files, keypoints in the clouds' own frames.

    With ``normalize`` (the detector's training normalisation), each cloud is first
    brought into :func:`~kptool.data.transform.detection_frame` and the keypoints are
    mapped back; ``None`` hands the clouds to the detector as they are.
    """
    if normalize is None:
        return detector.detect_batch([np.asarray(c, dtype=np.float32) for c in clouds])
    frames = [detection_frame(c, normalize) for c in clouds]
    found = detector.detect_batch([f.apply(np.asarray(c, dtype=np.float64)).astype(np.float32)
                                   for f, c in zip(frames, clouds)])
    return [f.apply_inverse(np.asarray(k, dtype=np.float64).reshape(-1, 3)) for f, k in zip(frames, found)]


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
                  scales: Sequence[float] | None = None, normalize: str | None = None) -> Curve:
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
        normalize: bring every cloud, clean or perturbed, into the detector's frame first
            (:func:`detect_in_frame`), as ``kptool detect`` does; ``None``: detect as given.

    Returns:
        a :class:`Curve` with ``x = levels``.
    """
    if perturbation not in PERTURBATIONS:
        raise KptoolError(f"unknown perturbation {perturbation!r}: expected one of {', '.join(PERTURBATIONS)}")
    if not clouds:
        raise KptoolError("repeatability: no clouds")
    x = np.asarray(DEFAULT_LEVELS[perturbation] if levels is None else levels, dtype=np.float64).reshape(-1)
    scale = check_scales(scales, len(clouds))
    clean = detect_in_frame(detector, clouds, normalize)
    if sum(len(k) for k in clean) == 0:
        raise KptoolError(f"repeatability: {detector.name} found no keypoints on the clean clouds")
    values = []
    for i, level in enumerate(x):
        rng = np.random.default_rng([seed, i])
        moved = [perturb(c, perturbation, float(level), rng) for c in clouds]
        again = detect_in_frame(detector, [m[0] for m in moved], normalize)
        hits = 0
        for s, (kp, kp2, (_, transform)) in enumerate(zip(clean, again, moved)):
            back = transform.apply_inverse(np.asarray(kp2, dtype=np.float64).reshape(-1, 3))
            hits += int(np.count_nonzero(moved_distances(kp, back, detector.ordered) / scale[s] < threshold))
        values.append(hits / sum(len(k) for k in clean))
    return Curve(x, np.asarray(values))
