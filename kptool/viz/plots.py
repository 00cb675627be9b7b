"""Matplotlib figures written atomically to PNG (see kptool.viz)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kptool.errors import KptoolError  # noqa: E402
from kptool.io.atomic import atomic_path  # noqa: E402

# A view from the front-left and a little above, for y-up shapes.
ELEVATION, AZIMUTH = 20.0, -60.0


def keypoint_colors(k: int) -> np.ndarray:
    """``(k, 3)`` RGB in [0, 1]: colour i always belongs to keypoint index i.

    The palette of :func:`kptool.io.writers.keypoint_colors` (coloured PLY files), scaled
    to matplotlib's [0, 1]: a keypoint has the same colour in every picture and file.
    """
    from kptool.io.writers import keypoint_colors as palette

    return palette(k) / 255.0


def _check(points: np.ndarray, what: str) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise KptoolError(f"{what}: expected shape (N, 3), got {p.shape}")
    return p


def _draw(ax, points: np.ndarray, keypoints: np.ndarray, title: str | None, marker_size: float) -> None:
    # matplotlib's 3D vertical axis is z, so draw (x, z, y) to stand y-up shapes upright
    p, kp = _check(points, "points"), _check(keypoints, "keypoints")
    ax.scatter(p[:, 0], p[:, 2], p[:, 1], s=2.0, c="0.55", alpha=0.45, depthshade=False, linewidths=0)
    if len(kp):
        ax.scatter(kp[:, 0], kp[:, 2], kp[:, 1], s=marker_size, c=keypoint_colors(len(kp)),
                   edgecolors="black", linewidths=0.6, depthshade=False)
    both = np.concatenate([p, kp]) if len(kp) else p
    centre = (both.max(axis=0) + both.min(axis=0)) / 2
    half = max(float((both.max(axis=0) - both.min(axis=0)).max()) / 2, 1e-9)
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[2] - half, centre[2] + half)
    ax.set_zlim(centre[1] - half, centre[1] + half)
    ax.set_box_aspect((1, 1, 1), zoom=1.3)  # 3D axes leave wide margins
    ax.view_init(elev=ELEVATION, azim=AZIMUTH)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def _save(fig, path: str | os.PathLike) -> Path:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return Path(path)


def plot_keypoints(points: np.ndarray, keypoints: np.ndarray, path: str | os.PathLike,
                   title: str | None = None) -> Path:
    """Draw a ``(N, 3)`` cloud in grey with ``(K, 3)`` keypoints coloured by index; write a PNG."""
    fig = plt.figure(figsize=(5, 5))
    _draw(fig.add_subplot(projection="3d"), points, keypoints, title, marker_size=60)
    k = len(np.asarray(keypoints))
    if 0 < k <= 20:
        handles = [plt.Line2D([], [], ls="", marker="o", mfc=c, mec="black", label=str(i))
                   for i, c in enumerate(keypoint_colors(k))]
        fig.legend(handles=handles, title="keypoint", loc="center right", fontsize=7, title_fontsize=8)
    return _save(fig, path)


def plot_keypoint_grid(shapes: Sequence[np.ndarray], keypoints: Sequence[np.ndarray], path: str | os.PathLike,
                       cols: int = 4, titles: Sequence[str] | None = None) -> Path:
    """A grid of shapes (``(N_i, 3)`` each) with their keypoints, same view and palette; write a PNG."""
    if len(shapes) != len(keypoints) or not shapes:
        raise KptoolError("plot_keypoint_grid: needs as many keypoint arrays as shapes, and at least one")
    if titles is not None and len(titles) != len(shapes):
        raise KptoolError("plot_keypoint_grid: needs one title per shape")
    cols = max(1, min(cols, len(shapes)))
    rows = -(-len(shapes) // cols)
    fig = plt.figure(figsize=(3.2 * cols, 3.2 * rows))
    for i, (p, kp) in enumerate(zip(shapes, keypoints)):
        _draw(fig.add_subplot(rows, cols, i + 1, projection="3d"), p, kp,
              None if titles is None else titles[i], marker_size=35)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=0.95, wspace=0.0, hspace=0.08)
    return _save(fig, path)


def plot_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | os.PathLike,
                xlabel: str, ylabel: str, title: str | None = None) -> Path:
    """Line plot of ``{label: (x, y)}``; y is drawn on [0, 1] when it fits there; write a PNG."""
    if not curves:
        raise KptoolError("plot_curves: no curves")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ys = []
    for label, (x, y) in curves.items():
        ax.plot(x, y, marker="o", markersize=3, label=label)
        ys.extend(np.asarray(y, dtype=float).tolist())
    if ys and 0.0 <= min(ys) and max(ys) <= 1.0:
        ax.set_ylim(0.0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_training_curves(runs: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike,
                         title: str | None = None, metric: str = "das") -> Path:
    """Loss and one validation metric over epochs of one or more training runs; write a PNG.

    ``runs`` maps a label to a run's ``log.jsonl`` records (``{"epoch", "train": {"loss"},
    "val": {"loss", <metric>, ...}}``). Left panel: training loss (solid) and validation loss
    (dashed), on a log scale when positive; right panel, when ``metric`` is not the loss and
    any run has it: that validation value (the run's ``train.best`` metric). One colour per run.
    """
    if not runs or not any(runs.values()):
        raise KptoolError("plot_training_curves: no epochs to plot")
    has_metric = metric != "loss" and any(metric in r.get("val", {}) for records in runs.values() for r in records)
    fig, axes = plt.subplots(1, 2 if has_metric else 1, figsize=(10 if has_metric else 5.5, 4), squeeze=False)
    loss_ax = axes[0, 0]
    for i, (label, records) in enumerate(runs.items()):
        colour = f"C{i % 10}"
        loss_ax.plot([r["epoch"] for r in records], [r["train"]["loss"] for r in records], color=colour,
                     label=f"{label} train")
        val = [r for r in records if "loss" in r.get("val", {})]
        if val:
            loss_ax.plot([r["epoch"] for r in val], [r["val"]["loss"] for r in val], color=colour, ls="--",
                         label=f"{label} val")
        scored = [r for r in records if metric in r.get("val", {})]
        if has_metric and scored:
            axes[0, 1].plot([r["epoch"] for r in scored], [r["val"][metric] for r in scored], color=colour,
                            marker="o", markersize=2, label=label)
    if all(y > 0 for line in loss_ax.get_lines() for y in line.get_ydata()):
        loss_ax.set_yscale("log")   # the first epochs' losses would flatten the rest on a linear axis
    for ax, ylabel in zip(axes[0], ("loss", f"validation {metric}")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def frame_axes(ax, points: np.ndarray, title: str | None) -> None:
    """A 3D axes around ``points`` (y up on screen), equal aspect, kptool's view angle, no axes."""
    centre = (points.max(axis=0) + points.min(axis=0)) / 2
    half = max(float((points.max(axis=0) - points.min(axis=0)).max()) / 2, 1e-9)
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[2] - half, centre[2] + half)
    ax.set_zlim(centre[1] - half, centre[1] + half)
    ax.set_box_aspect((1, 1, 1), zoom=1.3)
    ax.view_init(elev=ELEVATION, azim=AZIMUTH)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
