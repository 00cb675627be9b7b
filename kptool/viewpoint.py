"""Viewpoints from images with a trained ``viewpoint`` model; their evaluation on rendered datasets.

- :func:`load_viewpoint_predictor` / :func:`predict_viewpoints`: azimuth and elevation of the
  camera for a batch of RGB images, from a run folder or checkpoint (what the 2D-3D-2D
  transfer pipeline calls).
- :func:`evaluate_viewpoints` (``kptool eval viewpoint``): median rotation error and
  Acc@pi/6 on a rendered dataset's split, optionally after refining each predicted camera
  against the true silhouette (:func:`kptool.render.refine.refine_camera`).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from kptool.errors import InputError, KptoolError

REFINE_PARAMS = ("azimuth", "elevation", "distance")
FILES = ("viewpoint.json", "viewpoint.csv", "viewpoint-errors.png")


class ViewpointPredictor:
    """A trained ``viewpoint`` model with the image size it was trained at.

    Attributes:
        model: the :class:`~kptool.models.viewpoint.ViewpointNet` (eval mode, on ``device``).
        image_size: side of the square images it was trained on (``data.image_size``; ``None``: as rendered).
        config: the resolved training config.
    """

    def __init__(self, model, config: dict[str, Any], device: torch.device, batch_size: int = 32):
        if "viewpoint" not in getattr(model, "outputs", ()):
            raise KptoolError(f"{config.get('name') or config['model']['name']} predicts "
                              f"{', '.join(model.outputs)}, not viewpoints (train --preset viewpoint-resnet18)")
        self.model = model.to(device).eval()
        self.config = config
        self.device = device
        self.batch_size = int(batch_size)
        size = config.get("data", {}).get("image_size")
        self.image_size = None if size is None else int(size)

    def prepare(self, images) -> torch.Tensor:
        """``(N, 3, S, S)`` float32 in [0, 1] at the model's size from any of: a ``(N, 3, H, W)`` float
        tensor in [0, 1], a ``(N, H, W, 3)`` uint8 array, or a list of ``(H, W, 3)`` uint8 arrays /
        ``(3, H, W)`` float tensors (square, sizes may differ)."""
        from kptool.render.images import resize_rgb

        if isinstance(images, (list, tuple)):
            if not images:
                raise KptoolError("viewpoint: no images given")
            return torch.cat([self.prepare(im[None] if isinstance(im, torch.Tensor) else np.asarray(im)[None])
                              for im in images])
        if isinstance(images, np.ndarray):
            if images.ndim != 4 or images.shape[-1] != 3:
                raise KptoolError(f"viewpoint: image arrays must be (N, H, W, 3), got {images.shape}")
            scale = 255.0 if images.dtype == np.uint8 else 1.0
            images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / scale)
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            raise KptoolError(f"viewpoint: images must be (N, 3, H, W), got "
                              f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
        if images.shape[2] != images.shape[3]:
            raise KptoolError(f"viewpoint: images must be square, got {images.shape[3]} x {images.shape[2]} "
                              f"(crop or pad around the object first)")
        images = images.float()
        if not torch.isfinite(images).all():
            raise KptoolError("viewpoint: images contain NaN or inf")
        if self.image_size is not None and images.shape[2] != self.image_size:
            images = resize_rgb(images, self.image_size)
        return images

    @torch.no_grad()
    def predict(self, images) -> tuple[np.ndarray, np.ndarray]:
        """Azimuth ``(N,)`` and elevation ``(N,)`` in radians (float64) of the images (see :meth:`prepare`)."""
        x = self.prepare(images)
        out = [self.model.predict({"image": x[i:i + self.batch_size].to(self.device)})["viewpoint"].double().cpu()
               for i in range(0, len(x), self.batch_size)]
        both = torch.cat(out).numpy() if out else np.zeros((0, 2))
        return both[:, 0], both[:, 1]


def load_viewpoint_predictor(checkpoint_or_run: str | os.PathLike, device: str | torch.device = "auto",
                             batch_size: int = 32) -> ViewpointPredictor:
    """A predictor from a run folder (its ``best.pt``, else ``last.pt``) or a checkpoint / weights file."""
    from kptool.detect.learned import load_detector

    detector = load_detector(checkpoint_or_run, device, batch_size)      # loads and checks the weights
    return ViewpointPredictor(detector.model, detector.config, detector.device, batch_size)


def predict_viewpoints(checkpoint_or_run: str | os.PathLike, images, device: str | torch.device = "auto",
                       batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth and elevation (radians, ``(N,)`` each) of ``images`` (see :meth:`ViewpointPredictor.prepare`)."""
    return load_viewpoint_predictor(checkpoint_or_run, device, batch_size).predict(images)


def predict_dataset_viewpoints(model, dataset, device: torch.device, batch_size: int = 32) -> dict[str, np.ndarray]:
    """A model's viewpoints for every view of a :class:`~kptool.render.images.RenderedImages`, in its order:
    ``azimuth``, ``elevation``, ``true_azimuth``, ``true_elevation`` ``(N,)`` float64 radians."""
    from kptool.data.batches import batch_to, collate_shapes

    data = dataset.torch_dataset(("image", "azimuth", "elevation"))
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("azimuth", "elevation", "true_azimuth", "true_elevation")}
    for start in range(0, len(data), batch_size):
        batch = collate_shapes([data[i] for i in range(start, min(start + batch_size, len(data)))])
        vp = model.predict(batch_to({"image": batch["image"]}, device))["viewpoint"].double().cpu().numpy()
        cols["azimuth"].append(vp[:, 0])
        cols["elevation"].append(vp[:, 1])
        cols["true_azimuth"].append(batch["azimuth"].double().numpy())
        cols["true_elevation"].append(batch["elevation"].double().numpy())
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}


@dataclass
class ViewpointReport:
    """What :func:`evaluate_viewpoints` measured; ``summary`` keys: ``predicted`` and, with refinement, ``refined``."""

    checkpoint: str
    data: str
    split: str
    summary: dict[str, dict[str, float]]
    rows: list[dict[str, Any]]
    options: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "data": self.data, "split": self.split, "summary": self.summary,
                "options": self.options, "files": self.files}


def _pick(n: int, limit: int | None) -> np.ndarray:
    """At most ``limit`` evenly spaced indices of ``range(n)`` (all when None)."""
    if limit is None or limit >= n:
        return np.arange(n)
    if limit < 1:
        raise KptoolError(f"--limit must be at least 1, got {limit}")
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def _refine_all(dataset, pred: dict[str, np.ndarray], params: Sequence[str], steps: int, lr: float, sigma: float,
                device: torch.device, progress: Callable[[int, int], None] | None) -> dict[str, np.ndarray]:
    """Each view's predicted camera (``pred`` in the dataset's order) refined against its true silhouette."""
    from kptool.data.prepared import PreparedDataset
    from kptool.render.camera import Camera
    from kptool.render.dataset import mesh_of
    from kptool.render.refine import refine_camera

    manifest = dataset.manifest
    source = Path(manifest.get("dataset", ""))
    try:
        shapes = PreparedDataset(source)
    except InputError as e:
        raise InputError(dataset.root, f"refinement needs the meshes of the prepared dataset the renders came "
                                       f"from ({e})") from None
    sampling = manifest["options"]["sampling"]
    colours = manifest["options"].get("colours", "auto")
    views = dataset.torch_dataset(("silhouette", "camera_target"))
    out = {k: np.zeros(len(views)) for k in ("azimuth", "elevation", "distance", "iou_before", "iou_after")}
    meshes: dict[str, Any] = {}
    for i in range(len(views)):
        item = views[i]
        if item["id"] not in meshes:        # views come in shape order: keep one mesh at a time
            if item["id"] not in shapes.ids:
                raise InputError(source, f"has no shape {item['id']!r}, which {dataset.root} was rendered from")
            meshes = {item["id"]: mesh_of(shapes[shapes.index_of(item["id"])], colours)}
        mesh = meshes[item["id"]]
        size = dataset.render_size
        start = Camera(float(pred["azimuth"][i]), float(pred["elevation"][i]),
                       float(np.mean(sampling["distance"])) * mesh.size,
                       tuple(float(x) for x in item["camera_target"]), math.radians(sampling["fov"]), size)
        result = refine_camera(mesh.vertices, mesh.faces, item["silhouette"].numpy(), start, steps, lr,
                               tuple(params), sigma, device)
        out["azimuth"][i], out["elevation"][i] = result.camera.azimuth, result.camera.elevation
        out["distance"][i] = result.camera.distance
        out["iou_before"][i], out["iou_after"][i] = result.iou_before, result.iou_after
        if progress is not None:
            progress(i + 1, len(views))
    return out


def evaluate_viewpoints(checkpoint: str | os.PathLike, data: str | os.PathLike, split: str = "test",
                        out: str | os.PathLike | None = None, refine: bool = False,
                        refine_params: Sequence[str] = REFINE_PARAMS, steps: int = 30, lr: float = 0.01,
                        sigma: float = 0.1, azimuth_offset: float = 0.0, limit: int | None = None,
                        device: str | torch.device = "auto", batch_size: int = 32, force: bool = False,
                        progress: Callable[[int, int], None] | None = None) -> ViewpointReport:
    """Viewpoint errors of a trained model on the views of a rendered dataset's ``split``.

    Args:
        refine: also refine every predicted camera against the view's true silhouette
            (``refine_params`` among azimuth, elevation, distance; ``("distance",)`` is the
            authors' code) and report the refined errors.
        azimuth_offset: radians added to the predicted azimuths first, when the evaluated
            data's canonical frame is the training data's turned about +y (e.g. a set whose
            shapes face +z evaluated with a model trained on shapes facing -z: pi).
        limit: evaluate at most this many views, evenly spaced over the split (refinement is slow).
        out: folder for ``viewpoint.json``, ``viewpoint.csv`` and ``viewpoint-errors.png`` (None: no files).
    """
    from kptool.metrics.registry import write_csv
    from kptool.metrics.viewpoint import plot_error_histograms, summarize, viewpoint_errors
    from kptool.render.images import RenderedImages

    unknown = set(refine_params) - set(REFINE_PARAMS)
    if refine and (unknown or not refine_params):
        raise KptoolError(f"--refine-params must be among {', '.join(REFINE_PARAMS)}, got {', '.join(refine_params)}")
    started = time.perf_counter()
    predictor = load_viewpoint_predictor(checkpoint, device, batch_size)
    out_dir = Path(out) if out is not None else None
    if out_dir is not None and not force:
        clash = [n for n in FILES if (out_dir / n).exists()]
        if clash:
            raise KptoolError(f"{out_dir}: {', '.join(clash)} exist(s) already (use --force to overwrite)")
    dataset = RenderedImages(data, split, predictor.image_size)
    if len(dataset) == 0:
        raise InputError(data, f"no rendered views in split {split!r}")
    picked = _pick(len(dataset), limit)
    pred = predict_dataset_viewpoints(predictor.model, dataset.select(picked), predictor.device,
                                      predictor.batch_size)
    pred["azimuth"] = np.remainder(pred["azimuth"] + azimuth_offset, 2 * math.pi)
    errors = {"predicted": viewpoint_errors(pred["azimuth"], pred["elevation"], pred["true_azimuth"],
                                            pred["true_elevation"])}
    refined = None
    if refine:
        full = RenderedImages(data, split).select(picked)           # true silhouettes at the rendered size
        refined = _refine_all(full, pred, refine_params, steps, lr, sigma, predictor.device, progress)
        errors["refined"] = viewpoint_errors(refined["azimuth"], refined["elevation"], pred["true_azimuth"],
                                             pred["true_elevation"])
    rows = []
    for n, i in enumerate(picked):
        s, view = dataset.items[i]
        rec = dataset.records[s]
        row = {"id": rec["id"], "view": view, "split": rec["split"],
               "true_azimuth_deg": math.degrees(pred["true_azimuth"][n]),
               "true_elevation_deg": math.degrees(pred["true_elevation"][n]),
               "azimuth_deg": math.degrees(pred["azimuth"][n]), "elevation_deg": math.degrees(pred["elevation"][n]),
               **{f"{k}_error_deg": float(v[n]) for k, v in errors["predicted"].items()}}
        if refined is not None:
            row.update({"refined_azimuth_deg": math.degrees(refined["azimuth"][n]),
                        "refined_elevation_deg": math.degrees(refined["elevation"][n]),
                        "refined_distance": float(refined["distance"][n]),
                        **{f"refined_{k}_error_deg": float(v[n]) for k, v in errors["refined"].items()},
                        "iou_before": float(refined["iou_before"][n]), "iou_after": float(refined["iou_after"][n])})
        rows.append(row)
    summary = {k: summarize(v) for k, v in errors.items()}
    if refined is not None:
        summary["refined"].update({"iou_before_mean": float(refined["iou_before"].mean()),
                                   "iou_after_mean": float(refined["iou_after"].mean())})
    options = {"refine": refine, "refine_params": list(refine_params) if refine else [], "steps": steps, "lr": lr,
               "sigma": sigma, "azimuth_offset_deg": math.degrees(azimuth_offset), "limit": limit,
               "image_size": predictor.image_size, "seconds": round(time.perf_counter() - started, 2)}
    report = ViewpointReport(str(checkpoint), str(data), split or "all", summary, rows, options)
    if out_dir is not None:
        from kptool.io.atomic import write_text

        out_dir.mkdir(parents=True, exist_ok=True)
        write_text(out_dir / FILES[0], json.dumps(report.to_dict(), indent=1))
        write_csv(out_dir / FILES[1], list(rows[0]), [list(r.values()) for r in rows])
        plot_error_histograms(errors, out_dir / FILES[2], f"{Path(str(checkpoint)).name} on {Path(str(data)).name}"
                                                          f" ({split or 'all'}, {len(rows)} images)")
        report.files = [str(out_dir / n) for n in FILES]
    return report
