"""Pictures for the shape-basis keypoints (paper 001): the predicted symmetry plane, and the
per-index clustering of keypoints over many shapes (the paper's Fig. 3)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kptool.errors import KptoolError
from kptool.viz.plots import _check, _draw, _save, keypoint_colors, plt


def plot_symmetry_plane(points: np.ndarray, keypoints: np.ndarray, normal: np.ndarray, path: str | os.PathLike,
                        title: str | None = None) -> Path:
    """A cloud with its keypoints coloured by index and the plane ``normal . x = 0`` drawn; write a PNG.

    ``points`` ``(N, 3)``, ``keypoints`` ``(K, 3)``, ``normal`` ``(3,)`` (a plane through the
    origin, as the shape-basis models predict it).
    """
    p = _check(points, "points")
    n = np.asarray(normal, np.float64)
    if n.shape != (3,) or not np.linalg.norm(n) > 0:
        raise KptoolError("plot_symmetry_plane: normal must be a non-zero 3-vector")
    n = n / np.linalg.norm(n)
    # Two unit directions spanning the plane: the one closest to up (y), and its cross with the normal.
    up = np.array([0.0, 1.0, 0.0]) - n[1] * n
    up = up / np.linalg.norm(up) if np.linalg.norm(up) > 1e-9 else np.cross(n, [1.0, 0.0, 0.0])
    side = np.cross(n, up)
    half = np.abs(p).max() * 1.05
    corners = np.array([a * side * half + b * up * half for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    fig = plt.figure(figsize=(5, 5))
    ax = fig.add_subplot(projection="3d")
    _draw(ax, p, keypoints, title, marker_size=60)
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    ax.add_collection3d(Poly3DCollection([corners[:, [0, 2, 1]]], facecolors=(0.2, 0.4, 0.9, 0.18),
                                         edgecolors=(0.2, 0.4, 0.9, 0.6)))
    return _save(fig, path)


def plot_slot_clusters(keypoints: np.ndarray, path: str | os.PathLike, points: np.ndarray | None = None,
                       title: str | None = None) -> Path:
    """The keypoints of S shapes ``(S, K, 3)`` in one frame, coloured by index (paper 001, Fig. 3).

    Consistent keypoints form one tight cluster per colour. ``points``: an optional
    ``(N, 3)`` cloud drawn in grey for reference. Writes a PNG.
    """
    k = np.asarray(keypoints, np.float64)
    if k.ndim != 3 or k.shape[2] != 3 or not k.size:
        raise KptoolError(f"plot_slot_clusters: keypoints must be (S, K, 3), got {k.shape}")
    fig = plt.figure(figsize=(5, 5))
    ax = fig.add_subplot(projection="3d")
    ref = np.zeros((0, 3)) if points is None else _check(points, "points")
    _draw(ax, ref if len(ref) else k.reshape(-1, 3)[:1], np.zeros((0, 3)), title, marker_size=0)
    colors = keypoint_colors(k.shape[1])
    for j in range(k.shape[1]):
        ax.scatter(k[:, j, 0], k[:, j, 2], k[:, j, 1], s=8, color=colors[j], depthshade=False, linewidths=0)
    both = np.concatenate([ref, k.reshape(-1, 3)])
    centre, span = (both.max(0) + both.min(0)) / 2, max(float((both.max(0) - both.min(0)).max()) / 2, 1e-9)
    ax.set_xlim(centre[0] - span, centre[0] + span)
    ax.set_ylim(centre[2] - span, centre[2] + span)
    ax.set_zlim(centre[1] - span, centre[1] + span)
    return _save(fig, path)
