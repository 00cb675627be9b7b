"""Writing point clouds and keypoints for viewers (coloured ``.ply``) and programs (``.json``, ``.npz``).

Every writer is atomic (:func:`kptool.io.atomic.atomic_path`) and refuses to
replace an existing file unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from kptool.errors import OutputError
from kptool.io.atomic import atomic_path

KEYPOINT_SUFFIXES = (".ply", ".json", ".npz")
CLOUD_GREY = (170, 170, 170)


@lru_cache(maxsize=1)
def _palette() -> np.ndarray:
    import matplotlib

    # tab10 first (the ten most distinct colours), then the light halves of tab20,
    # then tab20b and tab20c: 60 colours whose order never changes.
    maps = matplotlib.colormaps
    rgb = [*maps["tab10"].colors, *maps["tab20"].colors[1::2], *maps["tab20b"].colors, *maps["tab20c"].colors]
    return np.round(np.asarray(rgb) * 255).astype(np.uint8)


def keypoint_colors(k: int) -> np.ndarray:
    """``(k, 3)`` uint8 colours for keypoint indices (or semantic ids) ``0..k-1``.

    A fixed palette of 60 colours (matplotlib's tab10, tab20, tab20b, tab20c),
    repeated beyond 60, so index ``i`` has the same colour in every file and plot.
    """
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    palette = _palette()
    return palette[np.arange(k) % len(palette)]


def write_points_ply(path: str | os.PathLike, points: np.ndarray, colors: np.ndarray | None = None,
                     overwrite: bool = False) -> Path:
    """Write ``(N, 3)`` points, optionally with ``(N, 3)`` uint8 colours, as a binary ``.ply``."""
    import trimesh

    pts = _check_array(points, "points", (None, 3), float)
    cols = None if colors is None else _check_colors(colors, len(pts))
    data = trimesh.PointCloud(pts, colors=cols).export(file_type="ply")
    with atomic_path(path, overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_keypoints(path: str | os.PathLike, keypoints: np.ndarray, ids: np.ndarray | None = None,
                    colors: np.ndarray | None = None, points: np.ndarray | None = None,
                    overwrite: bool = False) -> Path:
    """Write ``(K, 3)`` keypoints; the suffix of ``path`` picks the format.

    - ``.ply``: the keypoints as coloured points (colour = :func:`keypoint_colors` of
      their id, or of their index without ``ids``), followed by ``points`` in grey
      when given, for viewing in MeshLab, CloudCompare or similar.
    - ``.json``: ``{"keypoints": [[x, y, z], ...], "colors": [[r, g, b], ...]}`` plus
      ``"ids"`` and ``"points"`` when given.
    - ``.npz``: arrays ``keypoints`` ``(K, 3)`` float32, ``colors`` ``(K, 3)`` uint8,
      and ``ids`` ``(K,)`` int64 / ``points`` ``(N, 3)`` float32 when given.

    Args:
        keypoints: ``(K, 3)`` positions.
        ids: ``(K,)`` non-negative semantic ids (colour and label of each keypoint).
        colors: ``(K, 3)`` uint8 colours replacing the palette.
        points: ``(N, 3)`` cloud the keypoints belong to.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in KEYPOINT_SUFFIXES:
        raise OutputError(f"{path}: unsupported keypoint file format '{suffix}' "
                          f"(use {', '.join(KEYPOINT_SUFFIXES)})")
    kp = _check_array(keypoints, "keypoints", (None, 3), float).astype(np.float32)
    if ids is not None:
        ids = _check_array(ids, "ids", (len(kp),), int).astype(np.int64)
        if (ids < 0).any():
            raise ValueError("ids must be non-negative")
    if colors is None:
        colors = keypoint_colors(int(ids.max()) + 1 if ids is not None and len(ids) else len(kp))
        colors = colors[ids] if ids is not None else colors
    colors = _check_colors(colors, len(kp))
    cloud = None if points is None else _check_array(points, "points", (None, 3), float).astype(np.float32)

    if suffix == ".ply":
        if cloud is None:
            return write_points_ply(path, kp, colors, overwrite)
        grey = np.tile(np.array(CLOUD_GREY, np.uint8), (len(cloud), 1))
        return write_points_ply(path, np.concatenate([kp, cloud]), np.concatenate([colors, grey]), overwrite)
    with atomic_path(path, overwrite) as tmp:
        if suffix == ".json":
            doc = {"keypoints": kp.astype(float).round(7).tolist(), "colors": colors.tolist()}
            if ids is not None:
                doc["ids"] = ids.tolist()
            if cloud is not None:
                doc["points"] = cloud.astype(float).round(7).tolist()
            tmp.write_text(json.dumps(doc), encoding="utf-8")
        else:
            arrays = {"keypoints": kp, "colors": colors}
            arrays.update({k: v for k, v in (("ids", ids), ("points", cloud)) if v is not None})
            np.savez(tmp, **arrays)
    return Path(path)


def _check_array(value, name: str, shape: tuple, kind: type) -> np.ndarray:
    a = np.asarray(value)
    ok_kind = np.issubdtype(a.dtype, np.integer) if kind is int else np.issubdtype(a.dtype, np.number)
    if not ok_kind or a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must be a {want} {'integer' if kind is int else 'numeric'} array, "
                         f"got shape {a.shape} of {a.dtype}")
    if kind is float and not np.isfinite(a).all():
        raise ValueError(f"{name} contain NaN or inf")
    return a


def _check_colors(colors, n: int) -> np.ndarray:
    c = _check_array(colors, "colors", (n, 3), int)
    if c.min(initial=0) < 0 or c.max(initial=0) > 255:
        raise ValueError("colors must be integers in 0..255")
    return c.astype(np.uint8)
