"""Pictures for self-supervised features: confusion matrix, t-SNE map, mixture ellipsoids (ParAE Fig. 3)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from kptool.errors import KptoolError
from kptool.viz.plots import _save, frame_axes, keypoint_colors, plt


def plot_confusion(confusion: np.ndarray, classes: Sequence[str], path: str | os.PathLike,
                   title: str | None = None) -> Path:
    """Confusion matrix ``(K, K)`` (rows: true class, columns: predicted) with counts; write a PNG."""
    from sklearn.metrics import ConfusionMatrixDisplay

    conf = np.asarray(confusion)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1] or conf.shape[0] != len(classes):
        raise KptoolError(f"plot_confusion: expected a ({len(classes)}, {len(classes)}) matrix, got {conf.shape}")
    size = 2.5 + 0.45 * len(classes)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(conf, display_labels=list(classes)).plot(ax=ax, cmap="Blues", colorbar=False,
                                                                      xticks_rotation=60)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_tsne(features: np.ndarray, labels: np.ndarray, classes: Sequence[str], path: str | os.PathLike,
              perplexity: float = 10.0, seed: int = 0, title: str | None = None) -> Path:
    """t-SNE map (scikit-learn, 1000 iterations) of ``(S, C)`` features coloured by class; write a PNG.

    The perplexity (paper: 10) is lowered to ``(S - 1) / 3`` for small sets, where
    scikit-learn's limit would otherwise refuse it.
    """
    from sklearn.manifold import TSNE

    x, y = np.asarray(features, dtype=np.float64), np.asarray(labels)
    if x.ndim != 2 or len(x) != len(y) or len(x) < 4:
        raise KptoolError(f"plot_tsne: needs (S, C) features with S >= 4 and one label each, got {x.shape}, {y.shape}")
    perplexity = float(min(perplexity, (len(x) - 1) / 3))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=1000).fit_transform(x)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    colours = keypoint_colors(len(classes))
    for c, name in enumerate(classes):
        sel = y == c
        if sel.any():
            ax.scatter(xy[sel, 0], xy[sel, 1], s=14, color=colours[c], label=f"{name} ({int(sel.sum())})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="best", markerscale=1.3)
    ax.set_title(title or f"t-SNE, perplexity {perplexity:g}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def ellipsoid_surface(mean: np.ndarray, covariance: np.ndarray, resolution: int = 16) -> np.ndarray:
    """``(resolution, resolution, 3)`` grid on the 1-sigma ellipsoid ``(x - mu)^T Sigma^-1 (x - mu) = 1``."""
    values, vectors = np.linalg.eigh(np.asarray(covariance, dtype=np.float64))
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, resolution), np.linspace(0, np.pi, resolution))
    sphere = np.stack([np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v)], axis=-1)
    return sphere @ (vectors * np.sqrt(np.clip(values, 0, None))).T + np.asarray(mean)


def _draw_mixture(ax, points: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray,
                  assignment: np.ndarray | None, title: str | None, min_weight: float) -> None:
    p = np.asarray(points, dtype=np.float64)
    j = len(weights)
    if p.ndim != 2 or p.shape[1] != 3 or np.shape(means) != (j, 3) or np.shape(covariances) != (j, 3, 3):
        raise KptoolError("plot_mixtures: expected points (N, 3), weights (J,), means (J, 3), covariances (J, 3, 3)")
    colours = keypoint_colors(j)
    # matplotlib's vertical axis is z: draw (x, z, y) so y-up shapes stand upright
    point_colours = "0.5" if assignment is None else colours[np.asarray(assignment)]
    ax.scatter(p[:, 0], p[:, 2], p[:, 1], s=1.5, c=point_colours, alpha=0.5, depthshade=False, linewidths=0)
    for c in range(j):
        if weights[c] >= min_weight:
            e = ellipsoid_surface(means[c], covariances[c])
            ax.plot_surface(e[..., 0], e[..., 2], e[..., 1], color=colours[c], alpha=0.35, linewidth=0, shade=True)
    frame_axes(ax, p, title)


def plot_mixtures(clouds: Sequence[np.ndarray], mixtures: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                  path: str | os.PathLike, assignments: Sequence[np.ndarray] | None = None,
                  titles: Sequence[str] | None = None, cols: int = 4, min_weight: float = 0.0) -> Path:
    """Shapes with their Gaussian mixtures as 1-sigma ellipsoids (ParAE Fig. 3 top), side by side; write a PNG.

    Args:
        clouds: ``(N_i, 3)`` y-up points per shape.
        mixtures: per shape ``(weights (J,), means (J, 3), covariances (J, 3, 3))``.
        assignments: per shape ``(N_i,)`` component of each point (points take its colour), or None (grey).
        min_weight: components lighter than this are not drawn.
    """
    if not clouds or len(clouds) != len(mixtures) or (assignments is not None and len(assignments) != len(clouds)):
        raise KptoolError("plot_mixtures: needs one mixture (and assignment) per shape, and at least one shape")
    cols = max(1, min(cols, len(clouds)))
    rows = -(-len(clouds) // cols)
    fig = plt.figure(figsize=(3.6 * cols, 3.6 * rows))
    for i, (points, (w, mu, cov)) in enumerate(zip(clouds, mixtures)):
        _draw_mixture(fig.add_subplot(rows, cols, i + 1, projection="3d"), points, np.asarray(w), np.asarray(mu),
                      np.asarray(cov), None if assignments is None else assignments[i],
                      None if titles is None else titles[i], min_weight)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=0.95, wspace=0.0, hspace=0.08)
    return _save(fig, path)
