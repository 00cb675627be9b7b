"""Warnings for inputs that look unlike what a detector was trained on, in ways we can measure.

- **Too few points**: a cloud with less than half the points the model was trained
  on is used whole, but keypoints get less reliable as the cloud thins out.
- **Up axis probably wrong**: the shape's bounding-box proportions (x, y, z), after
  ``--up`` was applied, are compared with those of the category's training shapes.
  When they fit badly with y up but clearly better with another axis up, the file
  was most likely read with the wrong ``--up``.

The reference proportions are those of kptool's built-in procedural shapes (the
training data of the shipped weights, ShapeNet convention): mean and spread of the
unit-diagonal bounding-box extents of 32 generated shapes per category
(``generate_category(name, 32, seed=123)``), ``(x, y, z)`` with y up.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from kptool.data.shape import Shape
from kptool.errors import InputWarning

# category: (mean extents, spread) of unit-diagonal bounding boxes, y up (see the module docstring)
EXTENTS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "chair": ((0.461, 0.743, 0.480), (0.042, 0.038, 0.036)),
    "table": ((0.716, 0.409, 0.543), (0.077, 0.102, 0.094)),
    "airplane": ((0.701, 0.145, 0.697), (0.036, 0.019, 0.036)),
    "mug": ((0.511, 0.555, 0.652), (0.039, 0.056, 0.030)),
}
MIN_SPREAD = 0.05      # real shapes vary more than generated ones: no tighter tolerance than this
POOR_FIT = 3.0         # y up fits badly: some proportion is this many spreads off
CLEARLY_BETTER = 2.0   # ... and another axis up fits at least this many times better
FEW_POINTS = 0.5       # warn below this share of the model's input size


def up_axis_misfit(points: np.ndarray, category: str) -> dict[str, float] | None:
    """How badly a y-up cloud's proportions fit ``category`` with each prepared axis as up.

    Returns ``{axis: misfit}`` for ``x``, ``y`` and ``z`` (the largest deviation, in
    spreads, of the shape's extents from the category's; the two horizontal extents
    are compared sorted, as a shape may face any way), or ``None`` for a category
    without reference proportions. ``points`` ``(N, 3)``.
    """
    if category not in EXTENTS:
        return None
    mean, spread = (np.asarray(a, dtype=np.float64) for a in EXTENTS[category])
    spread = np.maximum(spread, MIN_SPREAD)
    p = np.asarray(points, dtype=np.float64)
    ext = p.max(axis=0) - p.min(axis=0)
    ext = ext / max(float(np.linalg.norm(ext)), 1e-300)
    ref_order = np.argsort(mean[[0, 2]])
    ref_flat, ref_spread = mean[[0, 2]][ref_order], spread[[0, 2]][ref_order]
    out = {}
    for axis, name in enumerate("xyz"):
        flat = np.sort(np.delete(ext, axis))
        dev = np.concatenate([np.abs(flat - ref_flat) / ref_spread, [abs(ext[axis] - mean[1]) / spread[1]]])
        out[name] = float(dev.max())
    return out


def check_input(source: Path, prepared: Shape, detector, points: int) -> None:
    """Warn (:class:`InputWarning`) when a prepared input looks unlike the detector's training data."""
    n = len(prepared.points)
    if n < FEW_POINTS * points:
        warnings.warn(InputWarning(source, f"has {n} points, far fewer than the {points} the model was trained on: "
                                           f"keypoints may be unreliable"), stacklevel=2)
    category = getattr(detector, "category", None)
    misfit = up_axis_misfit(prepared.points, category) if category else None
    if misfit is None or misfit["y"] <= POOR_FIT:
        return
    best = min(misfit, key=misfit.get)
    if best != "y" and misfit[best] * CLEARLY_BETTER <= misfit["y"]:
        up = prepared.meta.get("up", "y")
        # prepared axes are the file's after --up: with --up z, prepared y is the file's z and prepared z its -y
        file_axis = {"y": {"x": "x", "z": "z"}, "z": {"x": "x", "z": "y"}}[up][best]
        hint = f"try --up {file_axis}" if file_axis in ("y", "z") else "rotate the file so that y or z is up"
        warnings.warn(InputWarning(source, f"its proportions fit a {category} standing along the file's "
                                           f"{file_axis} axis better than along {up} (--up {up}): if it lies on "
                                           f"its side, {hint}"), stacklevel=2)
