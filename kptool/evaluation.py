"""Evaluation as a library: predictions + a prepared dataset + metric names -> a report.

:func:`evaluate` does what ``kptool eval`` needs and nothing it prints: it reads the
predictions file, checks its shapes against the dataset, brings keypoints into the
prepared frame, picks the split, runs each registered metric
(:data:`kptool.metrics.METRICS`) and, with an output folder, writes their CSV/PNG
files and a picture of the keypoints. Training validation calls the same metric objects.

    from kptool import evaluate
    report = evaluate("data/chair", "p.json", ["das", "miou"])
    report.metrics["das"]["das"]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from kptool.errors import InputError, KptoolError, OutputError


@dataclass
class Report:
    """The result of :func:`evaluate`; :meth:`to_dict` is what ``kptool eval --json`` prints."""

    dataset: str
    split: str
    num_shapes: int
    predictions: str | None
    method: str | None
    kind: str
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    computed_by: dict[str, Any] = field(default_factory=dict)   # metric name -> Metric object

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "split": self.split, "num_shapes": self.num_shapes,
                "predictions": self.predictions, "method": self.method, "kind": self.kind,
                "metrics": self.metrics, "skipped": self.skipped, "files": self.files}

    def rows(self) -> list[tuple[str, float | None, str]]:
        """Summary rows of every metric, then one per skipped metric."""
        rows = [row for name, m in self.computed_by.items() for row in m.rows(self.metrics[name])]
        return rows + [(name, None, f"skipped: {reason}") for name, reason in self.skipped.items()]

    def tables(self) -> list:
        return [t for name, m in self.computed_by.items() for t in m.tables(self.metrics[name])]


def _metric_objects(metrics: Sequence[Any], options: dict[str, Any]) -> list:
    from kptool.metrics import Metric, build_metric

    return [m if isinstance(m, Metric) else build_metric(m, **options) for m in metrics]


def check_output_folder(out: Path, names: Sequence[str], force: bool) -> Path:
    """Create ``out``; refuse (unless ``force``) only when files this run would write are already there."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    taken = [n for n in names if (out / n).exists()]
    if taken and not force:
        more = f" and {len(taken) - 3} more" if len(taken) > 3 else ""
        raise OutputError(f"{out}: would overwrite {', '.join(taken[:3])}{more} (use --force, or --out elsewhere)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def evaluate(data: str | os.PathLike | Any, predictions: str | os.PathLike | Any | None, metrics: Sequence[Any],
             split: str | None = None, detector: Any = None, out: str | os.PathLike | None = None,
             force: bool = False, skip_unsupported: bool = False, grid: int = 0,
             log: Callable[[str], None] | None = None, **options: Any) -> Report:
    """Score predictions on a prepared dataset.

    Args:
        data: prepared dataset folder (or a :class:`~kptool.data.prepared.PreparedDataset`).
        predictions: a predictions file or :class:`~kptool.io.predictions.Predictions`; None
            only for metrics that detect again (repeatability on every shape of the split).
        metrics: metric names (:data:`kptool.metrics.METRICS`) or Metric objects.
        split: train, val, test or all; default the predictions' split, else all.
        detector: a :class:`~kptool.detect.Detector` for metrics that detect again.
        out: folder for the metrics' CSV/PNG files (None: write nothing).
        force: overwrite those files when they exist.
        skip_unsupported: record a metric the data cannot support as skipped instead of failing.
        grid: draw this many shapes with their keypoints into ``out/keypoints.png`` (0: none;
            an existing picture is kept unless ``force``).
        log: called with one-line notes (shapes left out, progress).
        options: metric options (threshold, frame, perturbations, levels, seed), passed to
            the metrics whose constructor takes them.
    """
    from kptool.data.prepared import SPLITS, PreparedDataset
    from kptool.io.predictions import Predictions, read_predictions
    from kptool.metrics import EvalContext

    say = log or (lambda message: None)
    objects = _metric_objects(metrics, options)
    root = Path(data.root if isinstance(data, PreparedDataset) else data)
    pred_path = None
    if predictions is not None and not isinstance(predictions, Predictions):
        pred_path = Path(predictions)
        predictions = read_predictions(pred_path)
    if predictions is None and not all(m.redetects for m in objects):
        raise KptoolError("give a PREDICTIONS file (only repeatability detects again without one)")
    if split is None:
        split = predictions.split if predictions is not None and predictions.split in SPLITS else "all"
    dataset = PreparedDataset(root, split)
    shapes, predicted = _select(dataset, predictions, pred_path or root, say)
    out_dir = None
    if out is not None:
        # the files of the metrics that can run here (a skipped metric writes nothing)
        runs = [m for m in objects if ((detector is not None) if m.redetects else (m.kind in predicted))]
        out_dir = check_output_folder(Path(out), [n for m in runs for n in m.file_names()], force)

    ctx = EvalContext(dataset, shapes, predicted, detector, say,
                      class_names=getattr(predictions, "class_names", None))
    report = Report(str(root), split, len(shapes), None if pred_path is None else str(pred_path),
                    predictions.method if predictions is not None else getattr(detector, "name", None),
                    predictions.kind if predictions is not None else "keypoints")
    try:
        _run_metrics(objects, ctx, report, out_dir, skip_unsupported, detector)
        # The picture depends on the predictions only, so every metric run on them shares it: drawn
        # when missing (or with force), kept otherwise.
        draw = out_dir is not None and grid > 0 and "keypoints" in predicted
        if draw and (force or not (out_dir / "keypoints.png").exists()):
            from kptool.viz import plot_keypoint_grid

            n = min(grid, len(shapes))
            report.files.append(str(plot_keypoint_grid(
                [s.points for s in shapes[:n]], predicted["keypoints"][:n], out_dir / "keypoints.png",
                titles=[s.id[:16] for s in shapes[:n]])))
    except BaseException:
        _remove_partial(out_dir, report.files)
        raise
    return report


def _run_metrics(objects: list, ctx, report: Report, out_dir: Path | None, skip_unsupported: bool,
                 detector: Any) -> None:
    """Compute (and write the files of) every metric into ``report``."""
    for m in objects:
        if skip_unsupported and m.redetects and detector is None:
            report.skipped[m.name] = "needs --method or --checkpoint to detect again"
            continue
        try:
            m.check(ctx)
            if m.kind not in ctx.predicted and not m.redetects:
                raise KptoolError(f"{m.name} scores {m.kind} predictions; these are {report.kind}")
            report.metrics[m.name] = m.compute(ctx)
        except KptoolError as e:
            if not skip_unsupported:
                raise
            report.skipped[m.name] = str(e)
            continue
        report.computed_by[m.name] = m
        if out_dir is not None:
            report.files += [str(f) for f in m.write(report.metrics[m.name], out_dir)]
    if not report.metrics:
        raise KptoolError("no metric could be computed: " + "; ".join(f"{k}: {v}" for k, v in report.skipped.items()))


def _remove_partial(out_dir: Path | None, files: list[str]) -> None:
    """A failed or interrupted evaluation leaves none of its files behind (nor a folder it left empty)."""
    if out_dir is None:
        return
    for f in files:
        Path(f).unlink(missing_ok=True)
    try:
        out_dir.rmdir()   # only when empty: files that were there before stay
    except OSError:
        pass


def _select(dataset, preds, where: Path, say: Callable[[str], None]) -> tuple[list, dict[str, list[np.ndarray]]]:
    """The shapes of the split that have predictions, and those predictions (prepared frame) by kind."""
    from kptool.data.prepared import PreparedDataset
    from kptool.io.predictions import to_prepared_frame

    if preds is None:
        if len(dataset) == 0:
            raise InputError(dataset.root, f"has no shapes in split {dataset.split or 'all'!r}")
        return list(dataset), {}
    values = preds.values
    if not values:
        raise InputError(where, "has no shapes")
    if all(len(v) == 0 for v in values.values()):
        raise InputError(where, f"has no {preds.kind} on any shape")
    everything = PreparedDataset(dataset.root)
    known = set(everything.ids)
    unknown = [sid for sid in values if sid not in known]
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise InputError(where, f"shape(s) {', '.join(unknown[:3])}{more} are not in the dataset {dataset.root}")
    preds = to_prepared_frame(preds, everything)
    values = preds.values
    ids = [sid for sid in dataset.ids if sid in values]
    split = dataset.split or "all"
    if not ids:
        raise InputError(where, f"has no shapes of split {split!r} of {dataset.root}")
    if len(dataset) > len(ids):
        say(f"note: {len(dataset) - len(ids)} shapes of split {split!r} have no predictions and are left out")
    shapes = [dataset[dataset.index_of(sid)] for sid in ids]
    dtype = np.float64 if preds.kind == "keypoints" else None
    predicted = {preds.kind: [np.asarray(values[sid], dtype=dtype) for sid in ids]}
    # per-shape details (a shape-basis model's nodes, symmetry normal...): for the metrics that use them
    names = {name for sid in ids for name in preds.details.get(sid, {})}
    for name in sorted(names):
        predicted[name] = [preds.details.get(sid, {}).get(name) for sid in ids]
    return shapes, predicted
