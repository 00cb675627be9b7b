"""Reconstruction quality on held-out renders (``kptool eval reconstruction``).

Per rendered view, against the shape's ground truth in the canonical frame:

- ``voxel_iou``: IoU of the predicted occupancy (probability >= the marching-cubes level, 0.5 by
  default: the grid the mesh is made from) and the shape's grid
  (``kptool prepare voxels`` at the 3D estimator's resolution);
- ``chamfer``: symmetric Chamfer distance between the reconstruction's surface samples and
  as many area-weighted samples of the true mesh: mean distance from each predicted point to
  the nearest true one plus the mean the other way (Euclidean, not squared; kptool's
  ``chamfer_distance``), in canonical units (half the shape's longest side = 1). An empty
  reconstruction has no Chamfer distance and is counted in ``empty``;
- ``silhouette_iou`` and ``depth_l1`` (inside the true silhouette): the 2.5D sketch stage;
- ``voxel_iou_true_sketch``: the 3D estimator on the ground-truth sketches (the first stage
  replaced by its ground truth).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch

from kptool.data.batches import collate_shapes
from kptool.data.prepared import PreparedDataset, load_prepared_shape
from kptool.models.reconstruction import SKETCH_FIELDS, sketch_targets
from kptool.errors import InputError, KptoolError
from kptool.io.atomic import safe_join
from kptool.reconstruct.pipeline import Reconstructor
from kptool.reconstruct.surface import surface_samples
from kptool.render.images import RenderedImages
from kptool.reconstruct.voxels import FRAME_TABLE, voxel_table

COLUMNS = ("voxel_iou", "chamfer", "silhouette_iou", "depth_l1", "voxel_iou_true_sketch")
SWEEP = (0.1, 0.2, 0.3, 0.4, 0.5)     # levels of the voxel-IoU sweep in the summary


def voxel_iou(probability: np.ndarray, truth: np.ndarray, level: float = 0.5) -> float:
    """IoU of ``probability >= level`` and ``truth > 0.5`` (arrays of one shape); 1 when both are empty."""
    a, b = np.asarray(probability) >= level, np.asarray(truth) > 0.5
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def chamfer(x: np.ndarray, y: np.ndarray) -> float:
    """Symmetric Chamfer distance of two ``(N, 3)`` / ``(M, 3)`` clouds: mean nearest distance x -> y plus y -> x."""
    from kptool.ops import chamfer_distance

    return float(chamfer_distance(torch.as_tensor(x, dtype=torch.float32)[None],
                                  torch.as_tensor(y, dtype=torch.float32)[None], squared=False))


def true_surface(prepared: PreparedDataset, shape_id: str, count: int, seed: int) -> np.ndarray:
    """``(count, 3)`` area-weighted samples of a prepared shape's mesh in its canonical frame."""
    import trimesh

    rec = next((r for r in prepared.records if r["id"] == shape_id), None)
    if rec is None:
        raise InputError(prepared.root, f"has no shape {shape_id!r} (the renders' dataset changed?)")
    shape, _ = load_prepared_shape(safe_join(prepared.root, rec["file"]), shape_id)
    frame = prepared.extra(prepared.records.index(rec), FRAME_TABLE)
    vertices = (shape.vertices - frame[:3]) / frame[3]
    return surface_samples(trimesh.Trimesh(vertices, shape.faces, process=False), count, seed)


def evaluate_reconstruction(renders: str | os.PathLike, reconstructor: Reconstructor, split: str | None = "test",
                            views: int | None = None, progress=None) -> dict[str, Any]:
    """Score ``reconstructor`` on the views of a rendered dataset's split (``None``: all shapes).

    ``views`` limits the views per shape (the first ones). Returns ``{"rows": [{id, view,
    category, <COLUMNS>, sweep}], "mean": {column: value}, "by_category": {category: {column: mean}},
    "voxel_iou_by_level": {level: mean IoU at that level, for SWEEP},
    "images", "empty", "seconds_per_image": {stage: s}, "resolution", "level"}``.
    """
    grid_name = voxel_table(reconstructor.resolution)
    data = RenderedImages(renders, split).torch_dataset(("image", *SKETCH_FIELDS, f"extras/{grid_name}"))
    if len(data) == 0:
        raise KptoolError(f"{renders}: no rendered views in split {split!r}")
    prepared = PreparedDataset(data.prepared_root)
    category = {r["id"]: r.get("category") or prepared.manifest.get("category") or "" for r in prepared.records}
    chosen = [i for i, (s, v) in enumerate(data.items) if views is None or v < views]
    reconstructor.seconds = dict.fromkeys(reconstructor.seconds, 0.0)
    rows, surfaces, empty = [], {}, 0
    started = time.perf_counter()
    for n, i in enumerate(chosen):
        item = data[i]
        result = reconstructor(item["image"][None])[0]
        truth = np.asarray(item[f"extras/{grid_name}"])
        batch = collate_shapes([{k: item[k] for k in SKETCH_FIELDS}])
        size = result.sketches.shape[-1]
        true = {k: torch.nn.functional.interpolate(v, size=(size, size)) for k, v in sketch_targets(batch).items()}
        true_sil, true_depth = true["silhouette"][0, 0].numpy(), true["depth_map"][0, 0].numpy()
        mask = true_sil > 0.5
        from_truth = reconstructor.voxel_model.predict(
            {k: v.to(reconstructor.device) for k, v in batch.items()})["voxels"][0].cpu().numpy()
        row = {"id": item["id"], "view": item["view"], "category": category.get(item["id"], ""),
               "voxel_iou": voxel_iou(result.voxels, truth, reconstructor.level),
               "silhouette_iou": voxel_iou(result.silhouette, true_sil),
               "depth_l1": float(np.abs(result.sketches[0] - true_depth)[mask].mean()) if mask.any() else None,
               "voxel_iou_true_sketch": voxel_iou(from_truth, truth, reconstructor.level), "chamfer": None,
               "sweep": [voxel_iou(result.voxels, truth, level) for level in SWEEP]}
        if result.points is None:
            empty += 1
        else:
            if item["id"] not in surfaces:
                surfaces[item["id"]] = true_surface(prepared, item["id"], reconstructor.samples, reconstructor.seed)
            row["chamfer"] = chamfer(result.points, surfaces[item["id"]])
        rows.append(row)
        if progress is not None:
            progress(n + 1, len(chosen), item["id"])
    images = len(rows)

    def means(subset: list[dict[str, Any]]) -> dict[str, float | None]:
        out = {}
        for c in COLUMNS:
            values = [r[c] for r in subset if r[c] is not None]
            out[c] = float(np.mean(values)) if values else None
        return out

    cats = sorted({r["category"] for r in rows})
    return {"renders": str(renders), "split": split, "images": images, "shapes": len({r["id"] for r in rows}),
            "empty": empty, "resolution": reconstructor.resolution, "level": reconstructor.level,
            "voxel_iou_by_level": {str(level): float(np.mean([r["sweep"][k] for r in rows]))
                                   for k, level in enumerate(SWEEP)},
            "mean": means(rows), "by_category": {c: means([r for r in rows if r["category"] == c]) for c in cats},
            "seconds_per_image": {k: v / images for k, v in reconstructor.seconds.items()},
            "seconds_total": time.perf_counter() - started, "rows": rows}


def write_report(result: dict[str, Any], out: str | os.PathLike, force: bool = False) -> list[str]:
    """``out/reconstruction.csv`` (one row per view) and ``out/reconstruction.json`` (everything but the rows);
    refuses to overwrite them without ``force``."""
    import json
    from pathlib import Path

    from kptool.errors import OutputError
    from kptool.io.atomic import write_text
    from kptool.metrics.registry import write_csv

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    files = [out / "reconstruction.csv", out / "reconstruction.json"]
    taken = [f.name for f in files if f.exists()]
    if taken and not force:
        raise OutputError(f"{out}: would overwrite {', '.join(taken)} (use --force, or --out elsewhere)")
    header = ["id", "view", "category", *COLUMNS]
    write_csv(files[0], header, [["" if r[c] is None else r[c] for c in header] for r in result["rows"]])
    write_text(files[1], json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    return [str(f) for f in files]
