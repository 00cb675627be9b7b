"""Stage analysis (paper 004, Table 3): replace each stage by its ground truth, one PCK row each.

On a rendered dataset the ground truth of every stage is known: the true mesh and its
samples (3D shape), the true camera (viewpoint) and the true shape's own annotated points
as the embedding database (semantic model). Each row runs the whole transfer with some
stages replaced and scores it with PCK; a row whose learned stage has no model is left
out and said so.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from kptool.errors import KptoolError
from kptool.metrics.pck import PckReport, evaluate_pck
from kptool.transfer.models import SEARCH, TRUE, ModelChoice, build_stages
from kptool.transfer.pipeline import Pipeline, TransferOptions
from kptool.transfer.run import PREDICTIONS, jobs_for, run_transfer
from kptool.transfer.stages import RenderTruth

# row name -> (shape, viewpoint, semantic model) replaced by ground truth
ROWS = {
    "full": (False, False, False),
    "shape-gt": (True, False, False),
    "viewpoint-gt": (False, True, False),
    "semantic-gt": (False, False, True),
    "shape+viewpoint-gt": (True, True, False),
    "all-gt": (True, True, True),
}


DIRECT = "direct-2d"     # the heat-map network's row (with --direct)


@dataclass
class StageRow:
    name: str
    choice: ModelChoice
    report: PckReport | None
    seconds_per_image: dict[str, float]
    skipped: str | None = None      # why the row was not run


def row_choice(name: str, base: ModelChoice) -> ModelChoice:
    """The models of one row: ``base``'s, with the row's stages set to ``true``."""
    shape, view, semantic = ROWS[name]
    return replace(base, reconstruction=TRUE if shape else base.reconstruction,
                   viewpoint=TRUE if view else (base.viewpoint or SEARCH),
                   semantic_model=TRUE if semantic else "database")


def analyse_stages(renders: str | os.PathLike, base: ModelChoice, out: str | os.PathLike, rows=tuple(ROWS),
                   split: str | None = "test", views: int | None = None, options: TransferOptions = TransferOptions(),
                   device: str = "cpu", force: bool = False, log: Callable[[str], None] = lambda m: None
                   ) -> list[StageRow]:
    """Run every row of ``rows`` on the images of ``renders`` into ``out/<row>/``; PCK per row."""
    unknown = [r for r in rows if r not in ROWS and r != DIRECT]
    if unknown:
        raise KptoolError(f"unknown stage rows {', '.join(unknown)} (known: {', '.join(ROWS)}, {DIRECT})")
    if DIRECT in rows and base.direct is None:
        raise KptoolError(f"the {DIRECT} row needs --direct RUN (a heatmap2d run)")
    truth = RenderTruth(renders)
    jobs = jobs_for(renders, None, split, views)
    if not jobs:
        raise KptoolError(f"{renders}: no images in split {split!r}")
    out = Path(out)
    results = []
    for name in (r for r in rows if r != DIRECT):
        choice = row_choice(name, base)
        missing = ("no embedding model (--embedding)" if choice.embedding is None else
                   "no reconstruction model (--reconstruction)" if choice.reconstruction is None else None)
        if missing:
            results.append(StageRow(name, choice, None, {}, missing))
            log(f"{name}: skipped ({missing})")
            continue
        log(f"{name}: {len(jobs)} images")
        method = Pipeline(build_stages(choice, truth, device), options)
        results.append(_run_row(name, choice, method, jobs, renders, out, split, views, force))
    if base.direct is not None and (DIRECT in rows or tuple(rows) == tuple(ROWS)):
        from kptool.transfer.direct import DirectKeypoints

        log(f"{DIRECT}: {len(jobs)} images")
        results.append(_run_row(DIRECT, base, DirectKeypoints(base.direct, device), jobs, renders, out, split,
                                views, force))
    write_stage_table(results, out)
    return results


def _run_row(name, choice, method, jobs, renders, out: Path, split, views, force) -> StageRow:
    state = {"input": str(Path(renders).resolve()), "split": split, "views": views, "row": name}
    summary = run_transfer(jobs, method, out / name, force, False, False, state)
    report = evaluate_pck(_read(out / name / PREDICTIONS), renders, split)
    return StageRow(name, choice, report, summary["seconds_per_image"])


def _read(path: Path):
    from kptool.io.predictions import read_predictions

    return read_predictions(path)


def write_stage_table(rows: list[StageRow], out: Path) -> list[Path]:
    """``stages.json`` and ``stages.csv`` in ``out``: one line per row."""
    from kptool.io.atomic import write_text

    records = []
    for r in rows:
        direct = r.name == DIRECT
        rec = {"row": r.name, "shape": None if direct else r.choice.reconstruction,
               "viewpoint": None if direct else r.choice.viewpoint,
               "semantic_model": None if direct else r.choice.semantic_model, "direct": r.choice.direct if direct else None,
               "skipped": r.skipped,
               "seconds_per_image": r.seconds_per_image}
        if r.report is not None:
            rec.update(images=r.report.images, keypoints=r.report.keypoints, pck_image=r.report.pck_image,
                       pck_box=r.report.pck_box, visibility_accuracy=r.report.visibility_accuracy)
        records.append(rec)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", "pck_image", "pck_box", "images", "keypoints", "visibility_accuracy", "seconds_per_image"])
    for rec in records:
        if rec["skipped"]:
            w.writerow([rec["row"], "", "", "", "", "", ""])
            continue
        w.writerow([rec["row"], f"{rec['pck_image']:.4f}", f"{rec['pck_box']:.4f}", rec["images"], rec["keypoints"],
                    "" if rec["visibility_accuracy"] is None else f"{rec['visibility_accuracy']:.4f}",
                    f"{rec['seconds_per_image'].get('total', 0):.3f}"])
    out.mkdir(parents=True, exist_ok=True)
    return [write_text(out / "stages.json", json.dumps(records, indent=1), overwrite=True),
            write_text(out / "stages.csv", buf.getvalue(), overwrite=True)]
