"""Viewpoint errors (Pascal3D+ convention, as in the 2D-3D-2D paper and most viewpoint work).

The rotation error of a predicted camera is the geodesic distance between the predicted and
the true rotation matrices, ``arccos((tr(R_pred^T R_true) - 1) / 2)``: the angle of the
rotation that takes one camera orientation to the other. Cameras are the look-at cameras of
:mod:`kptool.render.camera` (no in-plane rotation), so ``R`` depends on azimuth and elevation
only. Reported: the median error (degrees) and ``Acc@pi/6``, the share of images whose
error is below 30 degrees; and the signed azimuth error (wrapped to [-180, 180)) and the
elevation error, per image and as histograms.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kptool.registration import rotation_error
from kptool.render.camera import look_at

ACCURACY_THRESHOLD = math.pi / 6


def camera_rotations(azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """``(N, 3, 3)`` float64 world-to-camera rotations of look-at cameras at these angles (radians)."""
    az = np.asarray(azimuth, dtype=np.float64).reshape(-1)
    el = np.asarray(elevation, dtype=np.float64).reshape(-1)
    zero = torch.zeros(3, dtype=torch.float64)
    return np.stack([look_at(torch.tensor(a), torch.tensor(e), torch.tensor(1.0, dtype=torch.float64),
                             zero)[0].numpy() for a, e in zip(az, el)]) if len(az) else np.zeros((0, 3, 3))


def viewpoint_errors(pred_azimuth, pred_elevation, true_azimuth, true_elevation) -> dict[str, np.ndarray]:
    """Per-image errors in degrees: ``rotation`` (geodesic), ``azimuth`` (signed, wrapped), ``elevation`` (signed)."""
    pa, pe, ta, te = (np.asarray(x, dtype=np.float64).reshape(-1) for x in
                      (pred_azimuth, pred_elevation, true_azimuth, true_elevation))
    if not len(pa) == len(pe) == len(ta) == len(te):
        raise ValueError(f"viewpoint arrays differ in length: {len(pa)}, {len(pe)}, {len(ta)}, {len(te)}")
    rotation = rotation_error(camera_rotations(pa, pe), camera_rotations(ta, te))
    azimuth = np.remainder(pa - ta + math.pi, 2 * math.pi) - math.pi
    return {"rotation": np.degrees(rotation), "azimuth": np.degrees(azimuth), "elevation": np.degrees(pe - te)}


def summarize(errors: dict[str, np.ndarray]) -> dict[str, float]:
    """Headline values of :func:`viewpoint_errors`: median rotation error (degrees) and Acc@pi/6."""
    rot = errors["rotation"]
    if len(rot) == 0:
        return {"images": 0}
    return {"rotation_error_median": float(np.median(rot)),
            "acc_pi_6": float(np.mean(rot < math.degrees(ACCURACY_THRESHOLD))),
            "azimuth_error_median": float(np.median(np.abs(errors["azimuth"]))),
            "elevation_error_median": float(np.median(np.abs(errors["elevation"]))),
            "images": int(len(rot))}


def plot_error_histograms(runs: dict[str, dict[str, np.ndarray]], path: str | Path, title: str = "") -> Path:
    """Azimuth, elevation and rotation error histograms (degrees), one colour per run (e.g. before/after)."""
    from kptool.viz.plots import _save, plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    bins = {"azimuth": np.linspace(-180, 180, 37), "elevation": np.linspace(-180, 180, 37),
            "rotation": np.linspace(0, 180, 19)}
    for ax, key in zip(axes, ("azimuth", "elevation", "rotation")):
        for label, errors in runs.items():
            ax.hist(errors[key], bins=bins[key], alpha=0.55, label=label)
        ax.set_xlabel(f"{key} error (degrees)")
        ax.set_ylabel("images")
        if key == "rotation":
            ax.axvline(math.degrees(ACCURACY_THRESHOLD), color="k", lw=0.8, ls="--")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def validation_values(model, dataset, device, batch_size: int) -> dict[str, Any]:
    """Validation during training on rendered images: :func:`summarize` of the model's predictions."""
    from kptool.viewpoint import predict_dataset_viewpoints

    pred = predict_dataset_viewpoints(model, dataset, device, batch_size)
    errors = viewpoint_errors(pred["azimuth"], pred["elevation"], pred["true_azimuth"], pred["true_elevation"])
    values = summarize(errors)
    values.pop("images", None)
    return values


# Validation values computed on rendered images (train.val_metrics), by name.
IMAGE_METRICS = {"viewpoint": validation_values}
