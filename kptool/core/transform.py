"""Similarity transforms between a shape's original frame and the prepared frame.

Every prepared shape stores the transform that took it from the frame it was read
in (the *original* frame) to the prepared frame, so any result (keypoints,
distances) can be mapped back. A transform is ``x' = s * R @ x + t`` and is kept
as a 4x4 matrix ``[[s R, t], [0, 1]]``.

Normalisations (``NORMALIZATIONS``) decide ``s`` and ``t`` from the points after
the up-axis rotation:

- ``skeleton-merger`` (default, the Skeleton Merger reference code): one scalar
  min and max over all coordinates mapped to [-1, 1]; aspect kept, not re-centred.
- ``fernandez``: centred on the centroid, longest bounding-box side scaled to 2.
- ``unit-sphere``: centred on the bounding-box centre, farthest point at radius 1.
- ``none``: identity (besides the up-axis rotation).

The prepared frame is y-up (the ShapeNetCore.v2 / KeypointNet convention). A
source that is z-up (``up="z"``) is rotated by -90 degrees about x: (x, y, z) ->
(x, z, -y).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kptool.errors import KptoolError

NORMALIZATIONS = ("skeleton-merger", "fernandez", "unit-sphere", "none")
UP_AXES = ("y", "z")


def up_rotation(up: str) -> np.ndarray:
    """``(3, 3)`` rotation taking a source with the given up axis to y-up."""
    if up == "y":
        return np.eye(3)
    if up == "z":
        return np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    raise KptoolError(f"unknown up axis {up!r}: expected one of {', '.join(UP_AXES)}")


@dataclass(frozen=True)
class Transform:
    """``x' = scale * rotation @ x + offset``, original frame -> prepared frame."""

    matrix: np.ndarray  # (4, 4) float64

    @staticmethod
    def identity() -> "Transform":
        return Transform(np.eye(4))

    @staticmethod
    def from_parts(scale: float = 1.0, rotation: np.ndarray | None = None,
                   offset: np.ndarray | None = None) -> "Transform":
        m = np.eye(4)
        m[:3, :3] = scale * (np.eye(3) if rotation is None else np.asarray(rotation, float))
        if offset is not None:
            m[:3, 3] = np.asarray(offset, float)
        return Transform(m)

    @property
    def scale(self) -> float:
        """Uniform scale factor: distances in the prepared frame = scale * original."""
        return float(np.cbrt(abs(np.linalg.det(self.matrix[:3, :3]))))

    def then(self, other: "Transform") -> "Transform":
        """The transform that applies ``self`` first, then ``other``."""
        return Transform(other.matrix @ self.matrix)

    def inverse(self) -> "Transform":
        return Transform(np.linalg.inv(self.matrix))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 3)`` points; dtype of the input is kept."""
        p = np.asarray(points)
        out = p.astype(np.float64) @ self.matrix[:3, :3].T + self.matrix[:3, 3]
        return out.astype(p.dtype if np.issubdtype(p.dtype, np.floating) else np.float64)

    def apply_inverse(self, points: np.ndarray) -> np.ndarray:
        return self.inverse().apply(points)

    def to_list(self) -> list[list[float]]:
        return self.matrix.tolist()

    @staticmethod
    def from_list(values) -> "Transform":
        m = np.asarray(values, dtype=np.float64)
        if m.shape != (4, 4):
            raise KptoolError(f"a transform must be a 4x4 matrix, got shape {m.shape}")
        return Transform(m)


def normalization(points: np.ndarray, method: str = "skeleton-merger") -> Transform:
    """The normalising transform of ``(N, 3)`` points (already in the y-up frame)."""
    p = np.asarray(points, dtype=np.float64)
    if method == "none":
        return Transform.identity()
    if method == "skeleton-merger":
        lo, hi = float(p.min()), float(p.max())
        span = max(hi - lo, 1e-12)
        s = 2.0 / span
        return Transform.from_parts(s, offset=np.full(3, -(hi + lo) / span))
    if method == "fernandez":
        c = p.mean(axis=0)
        side = float((p.max(axis=0) - p.min(axis=0)).max())
        s = 2.0 / max(side, 1e-12)
        return Transform.from_parts(s, offset=-s * c)
    if method == "unit-sphere":
        c = (p.max(axis=0) + p.min(axis=0)) / 2
        r = float(np.linalg.norm(p - c, axis=1).max())
        s = 1.0 / max(r, 1e-12)
        return Transform.from_parts(s, offset=-s * c)
    raise KptoolError(f"unknown normalisation {method!r}: expected one of {', '.join(NORMALIZATIONS)}")


def canonical_frame(points: np.ndarray) -> Transform:
    """Bounding-box centre to the origin, diagonal scaled to 1: the ShapeNetCore.v2 convention.

    The sources kptool trains on (ShapeNet, KeypointNet, the built-in procedural
    shapes) are in this frame before their normalisation, so a raw file brought into
    it first sits where the training shapes sat, whatever its origin and units.
    ``points`` ``(N, 3)``, already y-up.
    """
    p = np.asarray(points, dtype=np.float64)
    lo, hi = p.min(axis=0), p.max(axis=0)
    s = 1.0 / max(float(np.linalg.norm(hi - lo)), 1e-300)
    return Transform.from_parts(s, offset=-s * (lo + hi) / 2)


def detection_frame(points: np.ndarray, normalize: str = "skeleton-merger") -> Transform:
    """Any y-up ``(N, 3)`` cloud -> a model's frame: :func:`canonical_frame`, then its normalisation.

    The result does not depend on the cloud's position or scale: translating or
    scaling the input changes the transform, not the cloud it produces.
    """
    canonical = canonical_frame(points)
    return canonical.then(normalization(canonical.apply(np.asarray(points, dtype=np.float64)), normalize))


def skeleton_merger_nfact(transform: Transform) -> tuple[float, float]:
    """The reference code's per-shape ``nfact = (max, min)`` for a skeleton-merger transform."""
    s = transform.scale
    t = float(transform.matrix[0, 3])
    # x' = s x + t maps [min, max] to [-1, 1]: min = (-1 - t) / s, max = (1 - t) / s
    return (1.0 - t) / s, (-1.0 - t) / s
