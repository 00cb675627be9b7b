"""``kptool transfer``: keypoint transfer over an image, a folder of images or a rendered dataset.

Output folder::

    OUT/
      keypoints2d.json         # keypoints_2d predictions (docs/formats.md), written last
      transfer.json            # stages, options, images done and failed, seconds per stage
      failures.json            # [{id, source, error}]
      overlays/<name>.png      # the image, the refined silhouette's outline, the keypoints
      records/<name>.json      # one image's result (an interrupted run resumes from them)
      .kptool-transfer.json    # the arguments (resume only with the same)

A bad image (unreadable, not square, too small, no object, a busy background without a
mask) is listed in ``failures.json`` and the run goes on.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from kptool.errors import InputError, KptoolError
from kptool.failures import Failures
from kptool.io.atomic import safe_join, write_text
from kptool.io.predictions import Predictions, write_predictions
from kptool.transfer.inputs import image_files, load_input
from kptool.transfer.pipeline import TransferResult

STATE = ".kptool-transfer.json"
PREDICTIONS = "keypoints2d.json"
OWNED = (PREDICTIONS, "transfer.json", "failures.json", "overlays", "records")


@dataclass
class ImageJob:
    name: str            # the image's name in the predictions
    image: Path
    mask: Path | None


def jobs_for(path: str | os.PathLike, mask: str | os.PathLike | None = None, split: str | None = None,
             limit_views: int | None = None) -> list[ImageJob]:
    """The images of ``path`` (file, folder or rendered dataset) with their mask files.

    ``mask``: for one image a mask file; for a folder a folder of masks with the same
    relative names (a missing one fails that image). A rendered dataset's images are named
    ``<shape>/<view>`` (``split`` and ``limit_views`` choose among them).
    """
    p = Path(path)
    if limit_views is not None and limit_views < 1:
        raise KptoolError(f"--views must be at least 1, got {limit_views}")
    if p.is_dir() and (p / "manifest.json").is_file():
        from kptool.render.dataset import rgb_file
        from kptool.render.images import read_render_manifest

        manifest = read_render_manifest(p)
        if mask is not None:
            raise KptoolError("--mask is for image files and folders; a rendered dataset's objects are on a plain "
                              "background")
        return [ImageJob(f"{r['id']}/{v:02d}", p / rgb_file(r["id"], v), None) for r in manifest["shapes"]
                if split in (None, "all") or r["split"] == split
                for v in range(min(r["views"], limit_views or r["views"]))]
    files = image_files(p)
    if p.is_file():
        return [ImageJob(p.stem, p, Path(mask) if mask is not None else None)]
    if mask is not None and not Path(mask).is_dir():
        raise InputError(mask, "for a folder of images --mask must be a folder of masks with the same names")
    jobs = []
    for f in files:
        rel = f.relative_to(p).as_posix()
        jobs.append(ImageJob(rel, f, safe_join(mask, rel) if mask is not None else None))
    return jobs


def _record(result) -> dict:
    rec = {"name": result.name, "uv": np.asarray(result.uv).round(4).tolist(), "ids": np.asarray(result.ids).tolist(),
           "visible": np.asarray(result.visible).tolist(), "seconds": result.seconds}
    if isinstance(result, TransferResult):
        rec.update(keypoints=result.keypoints.round(6).tolist(), initial_camera=result.initial.to_json(),
                   camera=result.camera.to_json(), iou=None if result.iou is None else list(result.iou))
    return rec


def record_path(out: Path, name: str) -> Path:
    return safe_join(out, "records", name + ".json")


def run_transfer(jobs: list[ImageJob], method: Callable, out: str | os.PathLike, force: bool = False, strict: bool = False, overlays: bool = True, state: dict | None = None,
                 progress: Callable[[int, int, str], None] | None = None,
                 on_result: Callable[[np.ndarray, object], None] | None = None) -> dict:
    """Keypoints for every job's image with ``method`` (a :class:`~kptool.transfer.pipeline.Pipeline` or
    :class:`~kptool.transfer.direct.DirectKeypoints`); returns the summary written to ``transfer.json``."""
    from kptool.data.prepare import check_output
    from kptool.viz.transfer import plot_overlay

    out = Path(out)
    # as it reads back from JSON (tuples become lists), so that an identical re-run resumes
    run_state = json.loads(json.dumps({"method": method.describe(), **(state or {})}))
    resuming = check_output(out, run_state, force, STATE, owned=OWNED)
    out.mkdir(parents=True, exist_ok=True)
    if not resuming:
        write_text(out / STATE, json.dumps(run_state, sort_keys=True))
    (out / PREDICTIONS).unlink(missing_ok=True)
    failures = Failures(strict)
    records: dict[str, dict] = {}
    started = time.perf_counter()
    for i, job in enumerate(jobs):
        rpath = record_path(out, job.name)
        if resuming and rpath.is_file():
            try:
                records[job.name] = json.loads(rpath.read_text(encoding="utf-8"))
                continue
            except (OSError, json.JSONDecodeError):
                pass   # a damaged record is redone
        try:
            inp = load_input(job.image, job.name, job.mask)
            result = method(inp)
        except KptoolError as e:
            failures.add(job.name, job.image, str(e))
            continue
        records[job.name] = _record(result)
        if overlays:
            plot_overlay(inp.rgb, result, safe_join(out, "overlays", job.name + ".png"))
        if on_result is not None:
            on_result(inp.rgb, result)
        write_text(rpath, json.dumps(records[job.name]))
        if progress is not None:
            progress(i + 1, len(jobs), job.name)
    failures.write(out / "failures.json")
    ids = _common_ids(records)
    preds = Predictions({n: np.asarray(r["uv"], np.float32).reshape(-1, 2) for n, r in records.items()},
                        kind="keypoints_2d", method=method.describe()["method"], ordered=True,
                        visible={n: np.asarray(r["visible"], bool) for n, r in records.items()},
                        keypoint_ids=ids, split=str((state or {}).get("split") or ""),
                        dataset=str((state or {}).get("input", "")),
                        semantic_ids={} if ids is not None else
                        {n: np.asarray(r["ids"], np.int64) for n, r in records.items()})
    summary = {"images": len(jobs), "done": len(records), "failed": len(failures), "method": method.describe(),
               "seconds_per_image": _mean_seconds(records, method.stages_run),
               "seconds": round(time.perf_counter() - started, 2), "failures": failures.records}
    write_text(out / "transfer.json", json.dumps(summary, indent=1))
    write_predictions(out / PREDICTIONS, preds, overwrite=True)
    return summary


def _common_ids(records: dict[str, dict]) -> list[int] | None:
    seen = {tuple(r["ids"]) for r in records.values()}
    return list(seen.pop()) if len(seen) == 1 else None


def _mean_seconds(records: dict[str, dict], stages) -> dict[str, float]:
    """Mean seconds per image of each stage, and their total."""
    if not records:
        return {}
    means = {s: float(np.mean([r["seconds"].get(s, 0.0) for r in records.values()])) for s in stages}
    means["total"] = sum(means.values())
    return {k: round(v, 4) for k, v in means.items()}
