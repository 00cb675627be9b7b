"""A metric sampled at several values of a parameter (threshold, noise level...)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kptool.errors import KptoolError


@dataclass(frozen=True)
class Curve:
    """``y[i]`` is the metric at ``x[i]``; both ``(T,)`` float64."""

    x: np.ndarray
    y: np.ndarray

    def at(self, x: float) -> float:
        """The value at a sampled ``x`` (to within 1e-9)."""
        hit = np.flatnonzero(np.abs(self.x - x) <= 1e-9)
        if hit.size == 0:
            raise KptoolError(f"{x} is not one of the sampled values {self.x.tolist()}")
        return float(self.y[hit[0]])

    def to_dict(self) -> dict[str, list[float]]:
        return {"x": self.x.tolist(), "y": self.y.tolist()}
