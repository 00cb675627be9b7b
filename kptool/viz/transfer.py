"""Pictures of keypoint transfer: one overlay per image, and the grid of the stages.

Keypoints are coloured by semantic id (the same colour for an id in every picture), visible
ones filled, hidden ones hollow, as in the render previews (docs/render.md).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from kptool.viz.plots import _save, keypoint_colors, plt

SHAPE_VIEW = (math.radians(35), math.radians(70))   # azimuth, elevation of the reconstruction's picture


def id_colours(ids: np.ndarray) -> np.ndarray:
    """``(K, 3)`` RGB in [0, 1]: colour of each semantic id (palette position = the id)."""
    ids = np.asarray(ids, dtype=np.int64)
    palette = keypoint_colors(int(ids.max()) + 1 if ids.size else 1)
    return palette[ids] if ids.size else np.zeros((0, 3))


def draw_keypoints(ax, uv: np.ndarray, ids: np.ndarray, visible: np.ndarray, size: float = 26) -> None:
    colours = id_colours(ids)
    for k in range(len(uv)):
        ax.scatter(uv[k, 0], uv[k, 1], s=size, linewidths=1.4, edgecolors=[colours[k]],
                   facecolors=[colours[k]] if visible[k] else "none")


def _image(ax, rgb: np.ndarray, title: str | None) -> None:
    ax.imshow(rgb)
    ax.set_xlim(-0.5, rgb.shape[1] - 0.5)
    ax.set_ylim(rgb.shape[0] - 0.5, -0.5)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=7)


def silhouette_of(result, size: int) -> np.ndarray:
    """``(size, size)`` bool hard silhouette of the result's shape from its refined camera."""
    from dataclasses import replace

    from kptool.render.raster import rasterize

    return rasterize(result.shape.vertices, result.shape.faces, replace(result.camera, size=size)).mask


def draw_silhouette(ax, mask: np.ndarray, extent_size: int, colour: str = "tab:red") -> None:
    """The outline of ``mask`` (any resolution) over an image of ``extent_size`` pixels."""
    s = mask.shape[0]
    scale = extent_size / s
    xs = (np.arange(s) + 0.5) * scale - 0.5
    ax.contour(xs, xs, mask.astype(float), levels=[0.5], colors=colour, linewidths=1.0)


def plot_overlay(rgb: np.ndarray, result, path: str | os.PathLike) -> Path:
    """The input with the keypoints (and, for results through 3D, the refined silhouette's outline)."""
    fig, ax = plt.subplots(figsize=(3.2, 3.2))
    _image(ax, rgb, f"{result.name}")
    if hasattr(result, "camera"):     # through 3D: the refined silhouette
        draw_silhouette(ax, silhouette_of(result, result.camera.size), rgb.shape[0])
    draw_keypoints(ax, result.uv, result.ids, result.visible)
    return _save(fig, path)


def shape_picture(shape, size: int = 128) -> np.ndarray:
    """``(size, size, 3)`` uint8 grey render of a shape estimate from a fixed three-quarter view."""
    from kptool.render.materials import from_arrays
    from kptool.render.views import render_views
    from kptool.transfer.stages import default_camera

    camera = default_camera(shape, *SHAPE_VIEW, size)
    return render_views(from_arrays(shape.vertices, shape.faces), [camera])[0].rgb


def plot_transfer_grid(rows: list[tuple[np.ndarray, object]], path: str | os.PathLike, title: str | None = None) -> Path:
    """One row per ``(input rgb, TransferResult)``: input, reconstruction, refined silhouette, keypoints."""
    fig, axes = plt.subplots(len(rows), 4, figsize=(8.8, 2.2 * len(rows)), squeeze=False)
    for r, (rgb, result) in enumerate(rows):
        heads = ("input", "shape", "refined silhouette", "keypoints") if r == 0 else (None,) * 4
        _image(axes[r, 0], rgb, heads[0])
        _image(axes[r, 1], shape_picture(result.shape), heads[1])
        _image(axes[r, 2], rgb, heads[2])
        draw_silhouette(axes[r, 2], result.target > 0.5, rgb.shape[0], "tab:blue")
        draw_silhouette(axes[r, 2], silhouette_of(result, result.camera.size), rgb.shape[0])
        if result.iou is not None:
            axes[r, 2].text(2, rgb.shape[0] - 4, f"IoU {result.iou[0]:.2f}->{result.iou[1]:.2f}", fontsize=6)
        _image(axes[r, 3], rgb, heads[3])
        draw_keypoints(axes[r, 3], result.uv, result.ids, result.visible, size=18)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
