"""PCK: the share of 2D keypoints predicted within ``alpha x max(w, h)`` of the truth.

Paper 004's measure for 2D keypoint transfer: a ground-truth keypoint that is visible
in the image counts as correct when the prediction with its semantic id lies within
``alpha`` times ``max(w, h)`` of it, where ``(w, h)`` is the size of the image
(``alpha_img``) or of the object's box (``alpha_bbox``, the bounding box of the
ground-truth silhouette). Keypoints hidden in the ground truth are left out; a visible
one without a prediction of its id counts as wrong. The prediction's own visibility flag
does not enter PCK (the paper scores locations); how often it agrees with the truth is
reported beside it.

Ground truth comes from a rendered dataset (``kptool render``; docs/formats.md); an
image is named ``<shape id>/<view>`` (``rgb/<shape id>/<view>.png`` is accepted too).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kptool.errors import InputError, KptoolError

ALPHA = 0.1
ALPHAS = tuple(round(0.01 * i, 2) for i in range(1, 31))    # the curve: 0.01 ... 0.30
NORMS = ("image", "box")


@dataclass
class ImageTruth:
    """One image's ground truth.

    Attributes:
        uv: ``(K, 2)`` pixel coordinates (column, row) of the annotated keypoints.
        ids: ``(K,)`` int64 semantic ids.
        visible: ``(K,)`` bool, visible in the image.
        image_size: ``max(width, height)`` of the image in pixels.
        box_size: ``max(w, h)`` of the object's box in pixels (0 when the object is not in view).
    """

    uv: np.ndarray
    ids: np.ndarray
    visible: np.ndarray
    image_size: float
    box_size: float


def box_size(mask: np.ndarray) -> float:
    """``max(w, h)`` of the bounding box of a ``(H, W)`` boolean mask, in pixels (0 when empty).

    The box spans whole pixels: a single covered pixel is a 1 x 1 box.
    """
    rows, cols = np.nonzero(np.asarray(mask, dtype=bool))
    if rows.size == 0:
        return 0.0
    return float(max(cols.max() - cols.min() + 1, rows.max() - rows.min() + 1))


def image_name(image_id: str) -> str:
    """``rgb/<shape>/<view>.png`` or ``<shape>/<view>.png`` -> ``<shape>/<view>``."""
    name = image_id.replace("\\", "/")
    if name.startswith("rgb/"):
        name = name[4:]
    return name[:-4] if name.lower().endswith(".png") else name


def keypoint_errors(pred_uv: np.ndarray, pred_ids: np.ndarray, truth: ImageTruth) -> tuple[np.ndarray, np.ndarray]:
    """Distances in pixels from each visible ground-truth keypoint to the prediction with its id.

    Args:
        pred_uv: ``(P, 2)`` predicted pixel coordinates; pred_ids: ``(P,)`` their semantic ids
            (the first prediction of an id counts when an id repeats).

    Returns ``(distances (M,), ids (M,))`` over the M visible ground-truth keypoints; ``inf``
    where no prediction carries the id.
    """
    pred_uv = np.asarray(pred_uv, dtype=np.float64).reshape(-1, 2)
    pred_ids = np.asarray(pred_ids, dtype=np.int64).reshape(-1)
    if len(pred_uv) != len(pred_ids):
        raise KptoolError(f"{len(pred_uv)} predicted keypoints but {len(pred_ids)} ids")
    first: dict[int, int] = {}
    for i, sid in enumerate(pred_ids.tolist()):
        first.setdefault(sid, i)
    keep = np.flatnonzero(truth.visible)
    dist = np.full(len(keep), np.inf)
    for j, k in enumerate(keep):
        i = first.get(int(truth.ids[k]))
        if i is not None:
            dist[j] = float(np.linalg.norm(pred_uv[i] - truth.uv[k]))
    return dist, truth.ids[keep].astype(np.int64)


def pck(distances: np.ndarray, norms: np.ndarray, alpha: float) -> float:
    """Share of ``distances`` ``(M,)`` at most ``alpha * norms`` ``(M,)`` (NaN when M = 0)."""
    d = np.asarray(distances, dtype=np.float64)
    if d.size == 0:
        return float("nan")
    return float(np.mean(d <= alpha * np.asarray(norms, dtype=np.float64)))


@dataclass
class PckReport:
    """PCK of a set of images; ``curve[norm]`` is PCK at each of ``alphas``."""

    images: int
    keypoints: int
    alpha: float
    pck_image: float
    pck_box: float
    alphas: list[float]
    curve: dict[str, list[float]]
    per_id: dict[int, dict[str, float]]
    missing: int                          # visible keypoints whose id was never predicted
    visibility_accuracy: float | None     # share of all GT keypoints whose predicted flag agrees (None: no flags)
    uncovered_images: int                 # images of the renders (split) without a prediction
    method: str = ""
    renders: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"images": self.images, "keypoints": self.keypoints, "alpha": self.alpha,
                "pck_image": self.pck_image, "pck_box": self.pck_box, "alphas": self.alphas, "curve": self.curve,
                "per_id": {str(k): v for k, v in self.per_id.items()}, "missing": self.missing,
                "visibility_accuracy": self.visibility_accuracy, "uncovered_images": self.uncovered_images,
                "method": self.method, "renders": self.renders, **self.extra}


def score_images(truths: dict[str, ImageTruth], predicted: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
                 alpha: float = ALPHA, alphas=ALPHAS) -> PckReport:
    """PCK over the images of ``predicted``: ``{name: (uv (P, 2), ids (P,), visible (P,) or None)}``."""
    if alpha not in alphas:
        alphas = tuple(sorted({*alphas, alpha}))
    dists, image_norm, box_norm, ids = [], [], [], []
    agree = flags = 0
    for name, (uv, pid, pvis) in predicted.items():
        truth = truths[name]
        d, kid = keypoint_errors(uv, pid, truth)
        dists.append(d)
        ids.append(kid)
        image_norm.append(np.full(len(d), truth.image_size))
        box_norm.append(np.full(len(d), truth.box_size))
        if pvis is not None:
            said = dict(zip(np.asarray(pid).tolist(), np.asarray(pvis, dtype=bool).tolist()))
            for sid, vis in zip(truth.ids.tolist(), truth.visible.tolist()):
                agree += int(said.get(sid, False) == vis)
                flags += 1
    d = np.concatenate(dists) if dists else np.zeros(0)
    ids_all = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    norms = {"image": np.concatenate(image_norm) if dists else d, "box": np.concatenate(box_norm) if dists else d}
    curve = {n: [pck(d, norms[n], a) for a in alphas] for n in NORMS}
    per_id = {int(i): {"keypoints": int((ids_all == i).sum()),
                       **{f"pck_{n}": pck(d[ids_all == i], norms[n][ids_all == i], alpha) for n in NORMS}}
              for i in np.unique(ids_all)}
    return PckReport(len(predicted), int(d.size), alpha, pck(d, norms["image"], alpha), pck(d, norms["box"], alpha),
                     [float(a) for a in alphas], curve, per_id, int(np.isinf(d).sum()),
                     agree / flags if flags else None, 0)


def render_truths(renders: str | os.PathLike, split: str | None = None) -> dict[str, ImageTruth]:
    """Every image of a rendered dataset (of ``split``; None or ``all``: every split) -> its truth."""
    from kptool.render.dataset import read_views
    from kptool.render.images import read_render_manifest

    root = Path(renders)
    manifest = read_render_manifest(root)
    size = float(manifest["options"]["sampling"]["size"])
    out: dict[str, ImageTruth] = {}
    for rec in manifest["shapes"]:
        if split not in (None, "all") and rec["split"] != split:
            continue
        z = read_views(root, rec["id"])
        for v in range(len(z["azimuth"])):
            out[f"{rec['id']}/{v:02d}"] = ImageTruth(z["keypoints_2d"][v].astype(np.float64), z["keypoint_ids"],
                                                     z["keypoint_visible"][v], size, box_size(z["silhouette"][v]))
    return out


def evaluate_pck(predictions, renders: str | os.PathLike, split: str | None = None, alpha: float = ALPHA,
                 alphas=ALPHAS, source: str | os.PathLike | None = None) -> PckReport:
    """PCK of a ``keypoints_2d`` :class:`~kptool.io.predictions.Predictions` against a rendered dataset."""
    if predictions.kind != "keypoints_2d":
        raise InputError(source, f"PCK scores keypoints_2d predictions, this file holds {predictions.kind}")
    truths = render_truths(renders, split)
    predicted = {}
    for pid, uv in predictions.keypoints.items():
        name = image_name(pid)
        if name not in truths:
            where = f" of split {split}" if split not in (None, "all") else ""
            raise InputError(source, f"image {pid!r} is not an image{where} of the renders {renders}")
        predicted[name] = (uv, predictions.ids_of(pid), predictions.visible.get(pid))
    if not predicted:
        raise InputError(source, "no images to score")
    report = score_images(truths, predicted, alpha, alphas)
    report.uncovered_images = len(truths) - len(predicted)
    report.method, report.renders = predictions.method, str(renders)
    return report


def write_pck_outputs(report: PckReport, out: str | os.PathLike, force: bool = False) -> list[Path]:
    """``pck.json``, ``pck_curve.csv`` (alpha, image, box), ``pck_curve.png`` and ``pck_by_id.csv`` in ``out``."""
    from kptool.io.atomic import check_outputs, write_text
    from kptool.viz.plots import plot_curves

    out = Path(out)
    names = ("pck.json", "pck_curve.csv", "pck_curve.png", "pck_by_id.csv")
    check_outputs([out / n for n in names], overwrite=force)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / names[0], json.dumps(report.to_dict(), indent=1))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["alpha", "pck_image", "pck_box"])
    for a, pi, pb in zip(report.alphas, report.curve["image"], report.curve["box"]):
        w.writerow([f"{a:.2f}", f"{pi:.6f}", f"{pb:.6f}"])
    write_text(out / names[1], buf.getvalue())
    plot_curves({f"alpha_{n}": (report.alphas, report.curve[n]) for n in NORMS}, out / names[2], "alpha", "PCK",
                title=f"PCK {report.method}".strip())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["keypoint_id", "keypoints", f"pck_image@{report.alpha:g}", f"pck_box@{report.alpha:g}"])
    for i, row in sorted(report.per_id.items()):
        w.writerow([i, row["keypoints"], f"{row['pck_image']:.6f}", f"{row['pck_box']:.6f}"])
    write_text(out / names[3], buf.getvalue())
    return [out / n for n in names]
