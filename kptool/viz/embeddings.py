"""Pictures of dense embeddings: colours from a projection shared by all shapes, correspondence lines.

- :func:`embedding_colors`: a 3-component PCA of the embeddings of every shape of a
  picture together (so that one colour means one embedding on every shape, as paper
  002's Fig. 5), each component scaled to [0, 1] between its 1st and 99th percentile.
- :func:`plot_embeddings`: shapes side by side, every point coloured by its embedding.
- :func:`plot_correspondences`: two shapes side by side and lines from chosen points of
  the first to the points of the second with the nearest embedding.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from kptool.errors import KptoolError
from kptool.viz.plots import ELEVATION, _save, frame_axes, keypoint_colors, plt


def embedding_colors(embeddings: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per shape ``(N_i, 3)`` RGB in [0, 1] from ``(N_i, D)`` embeddings, one projection for all shapes."""
    from sklearn.decomposition import PCA

    if not embeddings:
        raise KptoolError("embedding_colors: no embeddings")
    arrays = [np.asarray(e, dtype=np.float64) for e in embeddings]
    if any(a.ndim != 2 or a.shape[1] != arrays[0].shape[1] for a in arrays):
        raise KptoolError("embedding_colors: every shape needs (N_i, D) embeddings of one dimension D")
    stacked = np.concatenate(arrays)
    k = min(3, stacked.shape[1], len(stacked))
    projected = PCA(n_components=k, random_state=0).fit_transform(stacked)
    if k < 3:
        projected = np.c_[projected, np.zeros((len(projected), 3 - k))]
    lo, hi = np.percentile(projected, 1, axis=0), np.percentile(projected, 99, axis=0)
    rgb = np.clip((projected - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)
    return np.split(rgb, np.cumsum([len(a) for a in arrays])[:-1])


def plot_embeddings(shapes: Sequence[np.ndarray], embeddings: Sequence[np.ndarray], path: str | os.PathLike,
                    cols: int = 4, titles: Sequence[str] | None = None) -> Path:
    """A grid of ``(N_i, 3)`` shapes coloured by their ``(N_i, D)`` embeddings (shared projection); a PNG."""
    if len(shapes) != len(embeddings) or not shapes:
        raise KptoolError("plot_embeddings: needs one embedding array per shape, and at least one shape")
    if any(len(p) != len(e) for p, e in zip(shapes, embeddings)):
        raise KptoolError("plot_embeddings: every shape needs one embedding per point")
    colours = embedding_colors(embeddings)
    cols = max(1, min(cols, len(shapes)))
    rows = -(-len(shapes) // cols)
    fig = plt.figure(figsize=(3.2 * cols, 3.2 * rows))
    for i, (p, c) in enumerate(zip(shapes, colours)):
        ax = fig.add_subplot(rows, cols, i + 1, projection="3d")
        p = np.asarray(p, dtype=np.float64)
        ax.scatter(p[:, 0], p[:, 2], p[:, 1], s=3.0, c=c, depthshade=False, linewidths=0)
        frame_axes(ax, p, None if titles is None else titles[i])
    fig.subplots_adjust(left=0, right=1, bottom=0, top=0.95, wspace=0.0, hspace=0.08)
    return _save(fig, path)


def plot_correspondences(source: np.ndarray, target: np.ndarray, source_embeddings: np.ndarray,
                         target_embeddings: np.ndarray, points: Sequence[int], path: str | os.PathLike,
                         titles: tuple[str, str] | None = None) -> Path:
    """Lines from ``points`` (indices) of ``source`` to their nearest-embedding points on ``target``; a PNG.

    The shapes are drawn side by side (the target shifted along x by the source's width
    and a margin), coloured by their embeddings; line i has keypoint colour i.
    """
    from kptool.metrics.mge import nearest_embedding

    a, b = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    idx = np.asarray(points, dtype=np.int64)
    if len(idx) == 0 or idx.min() < 0 or idx.max() >= len(a):
        raise KptoolError("plot_correspondences: points must be indices into the source shape")
    matched = nearest_embedding(np.asarray(source_embeddings)[idx], target_embeddings)
    shift = np.array([a[:, 0].max() - b[:, 0].min() + 0.25 * np.ptp(a[:, 0]), 0.0, 0.0])
    b = b + shift
    colours = embedding_colors([source_embeddings, target_embeddings])
    fig = plt.figure(figsize=(8, 4.5))
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.92), projection="3d")   # the whole width: the pair is wide
    for p, c in ((a, colours[0]), (b, colours[1])):
        ax.scatter(p[:, 0], p[:, 2], p[:, 1], s=2.0, c=c, alpha=0.6, depthshade=False, linewidths=0)
    for colour, i, j in zip(keypoint_colors(len(idx)), idx, matched):
        ax.plot([a[i, 0], b[j, 0]], [a[i, 2], b[j, 2]], [a[i, 1], b[j, 1]], color=colour, lw=1.2)
        ax.scatter([a[i, 0], b[j, 0]], [a[i, 2], b[j, 2]], [a[i, 1], b[j, 1]], s=25, color=colour,
                   edgecolors="black", linewidths=0.5, depthshade=False)
    frame_axes(ax, np.concatenate([a, b]), None if titles is None else f"{titles[0]}  ->  {titles[1]}")
    both = np.concatenate([a, b])
    lo, hi = both.min(axis=0), both.max(axis=0)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[2], hi[2])
    ax.set_zlim(lo[1], hi[1])
    ax.set_box_aspect(tuple(np.maximum(hi - lo, 1e-9)[[0, 2, 1]]), zoom=1.2)   # the pair fills the width
    ax.view_init(elev=ELEVATION, azim=-90.0)      # from the front, so that the lines do not cross the shapes
    return _save(fig, path)
