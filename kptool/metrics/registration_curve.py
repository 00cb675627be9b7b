"""Intra-category registration under misalignment (Fernandez-Labrador et al., Sec. 5.3, Fig. 5).

Each test shape is turned about the up axis by a known angle ``a``; its ordered keypoints
are registered (Umeyama similarity, :func:`kptool.registration.similarity_transform`) to
those of ``templates`` aligned shapes of the training split. The registration should undo
the turn, so the error of one registration is the geodesic distance between its rotation
and ``R_up(a)^T``; the curve is the mean (and median) error over shapes and templates
against ``a``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from kptool.errors import KptoolError
from kptool.registration import rotation_about_up, rotation_error_deg, similarity_transform

DEFAULT_ANGLES = tuple(float(a) for a in range(0, 91, 15))


@dataclass
class RegistrationCurve:
    """``angles`` ``(A,)`` degrees; ``errors`` ``(S, A, T)`` degrees (shape, angle, template);
    ``templates``: indices of the template shapes in the training split."""

    angles: np.ndarray
    errors: np.ndarray
    templates: list[int]

    @property
    def mean(self) -> np.ndarray:
        return self.errors.mean(axis=(0, 2))

    @property
    def median(self) -> np.ndarray:
        return np.median(self.errors.transpose(1, 0, 2).reshape(len(self.angles), -1), axis=1)

    def rows(self) -> list[tuple[float, float, float]]:
        """``(angle, mean error, median error)`` per angle."""
        return [(float(a), float(m), float(d)) for a, m, d in zip(self.angles, self.mean, self.median)]


def pick_templates(available: int, templates: int = 3, seed: int = 0) -> list[int]:
    """``templates`` distinct indices among ``available`` training shapes, seeded."""
    if available < 1:
        raise KptoolError("registration needs training shapes to serve as templates")
    return sorted(np.random.default_rng(seed).choice(available, size=min(templates, available), replace=False)
                  .tolist())


def registration_curve(detect_batch: Callable[[list[np.ndarray]], list[np.ndarray]],
                       test_clouds: Sequence[np.ndarray], template_clouds: Sequence[np.ndarray],
                       angles_deg: Sequence[float] = DEFAULT_ANGLES, with_scale: bool = True) -> RegistrationCurve:
    """The Fig. 5 experiment.

    Args:
        detect_batch: clouds ``(N, 3)`` in the detector's (prepared) frame -> ordered keypoints ``(K, 3)``.
        test_clouds: the test shapes, aligned (prepared frame).
        template_clouds: the (aligned) templates, e.g. three training shapes (:func:`pick_templates`).
        angles_deg: misalignment angles about the up axis.
    """
    if not test_clouds or not template_clouds:
        raise KptoolError("registration needs test shapes and at least one template")
    angles = np.asarray(angles_deg, dtype=np.float64)
    targets = [np.asarray(k, np.float64) for k in detect_batch([np.asarray(c, np.float32) for c in template_clouds])]
    errors = np.zeros((len(test_clouds), len(angles), len(targets)))
    for j, a in enumerate(angles):
        turn = rotation_about_up(a)
        turned = [(np.asarray(c, np.float64) @ turn.T).astype(np.float32) for c in test_clouds]
        for i, kp in enumerate(detect_batch(turned)):
            for t, q in enumerate(targets):
                fit = similarity_transform(np.asarray(kp, np.float64), q, with_scale)
                errors[i, j, t] = rotation_error_deg(fit.rotation, turn.T)
    return RegistrationCurve(angles=angles, errors=errors, templates=list(range(len(targets))))
