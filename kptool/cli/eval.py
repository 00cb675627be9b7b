"""`kptool eval METRIC [PREDICTIONS] --data DIR`: score keypoints on a prepared dataset.

METRIC is a sub-command: ``das``, ``miou``, ``part-corr``, ``repeatability`` or
``all``. PREDICTIONS is a predictions file (docs/formats.md); ``repeatability``
re-detects instead, with ``--method`` (a baseline) or ``--checkpoint``, and then
PREDICTIONS only selects the shapes. Results go to stdout as a table (or JSON
with ``--json``); curves (PNG + CSV) and a grid of shapes with coloured
keypoints go to ``--out``. Definitions: docs/metrics.md.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from kptool.cli.common import info, print_json, stdout
from kptool.errors import InputError, KptoolError, OutputError

app = typer.Typer(help="Evaluate keypoints: das, miou, part-corr, repeatability, or all of them.",
                  no_args_is_help=True)

METRICS = ("das", "miou", "part-corr", "repeatability")
FRAMES = ("prepared", "original")

PREDICTIONS = typer.Argument(None, help="Predictions file (kptool detect writes one).", show_default=False)
DATA = typer.Option(..., "--data", "-d", help="Prepared dataset folder the predictions refer to.")
SPLIT = typer.Option(None, "--split", help="Evaluate only the shapes of this split: train, val, test or all "
                                           "(default: the predictions file's split, else all).")
OUT = typer.Option(None, "--out", "-o", show_default=False,
                   help="Folder for PNG/CSV outputs [default: PREDICTIONS name + '.eval', or "
                        "'repeatability-METHOD.eval'].")
JSON = typer.Option(False, "--json", help="Print the results as JSON only.")
QUIET = typer.Option(False, "--quiet", "-q", help="No messages on stderr.")
FORCE = typer.Option(False, "--force", help="Overwrite files in a non-empty --out folder.")
THRESHOLD = typer.Option(0.1, "--threshold", help="mIoU: distance at which the value is quoted; "
                                                  "repeatability: largest distance a keypoint may move.")
FRAME = typer.Option(None, "--frame", show_default=False,
                     help="Frame distances are measured in: prepared or original [default: original for "
                          "miou (the papers' numbers), prepared for repeatability].")
GRID = typer.Option(8, "--grid", help="Shapes in the keypoint picture (0 = none).")
METHOD = typer.Option(None, "--method", "-m", show_default=False,
                      help="Repeatability: re-detect with a baseline: iss, harris3d, fps or random.")
CHECKPOINT = typer.Option(None, "--checkpoint", show_default=False,
                          help="Repeatability: re-detect with a trained model.")
NUM_KEYPOINTS = typer.Option(None, "--num-keypoints", "-k", show_default=False,
                             help="Repeatability with --method: keypoints per shape [default: the method's].")
PERTURBATION = typer.Option(None, "--perturbation", show_default=False,
                            help="Repeatability: noise, rotation-up, rotation-so3 or decimation; repeat the "
                                 "option for several [default: all four].")
LEVELS = typer.Option(None, "--levels", show_default=False,
                      help="Repeatability: comma-separated levels (noise sigma, degrees, or share dropped) "
                           "[default: per perturbation, see docs/metrics.md].")
SEED = typer.Option(0, "--seed", help="Seed of the perturbations and the random baseline.")
DEVICE = typer.Option("auto", "--device", help="Device for --checkpoint: auto, cpu, cuda, cuda:N.")


@dataclass
class Options:
    predictions: Optional[Path]
    data: Path
    split: Optional[str]
    out: Optional[Path]
    as_json: bool
    quiet: bool
    force: bool
    threshold: float = 0.1
    frame: Optional[str] = None
    grid: int = 8
    method: Optional[str] = None
    checkpoint: Optional[Path] = None
    num_keypoints: Optional[int] = None
    perturbations: list[str] = field(default_factory=list)
    levels: Optional[str] = None
    seed: int = 0
    device: str = "auto"


@app.command("das")
def das(predictions: Optional[Path] = PREDICTIONS, data: Path = DATA, split: Optional[str] = SPLIT, out: Optional[Path] = OUT,
        as_json: bool = JSON, quiet: bool = QUIET, force: bool = FORCE, grid: int = GRID) -> None:
    """Dual alignment score: forward, backward and their mean (Skeleton Merger's definition)."""
    _evaluate(["das"], Options(predictions, data, split, out, as_json, quiet, force, grid=grid))


@app.command("miou")
def miou(predictions: Optional[Path] = PREDICTIONS, data: Path = DATA, split: Optional[str] = SPLIT, out: Optional[Path] = OUT,
         as_json: bool = JSON, quiet: bool = QUIET, force: bool = FORCE, threshold: float = THRESHOLD,
         frame: Optional[str] = FRAME, grid: int = GRID) -> None:
    """Keypoint mIoU curve: Euclidean (Skeleton Merger) and, with geodesic tables, geodesic (KeypointNet)."""
    _evaluate(["miou"], Options(predictions, data, split, out, as_json, quiet, force, threshold, frame, grid))


@app.command("part-corr")
def part_corr(predictions: Optional[Path] = PREDICTIONS, data: Path = DATA, split: Optional[str] = SPLIT,
              out: Optional[Path] = OUT, as_json: bool = JSON, quiet: bool = QUIET, force: bool = FORCE,
              grid: int = GRID) -> None:
    """Part correspondence ratio on part-labelled shapes (ShapeNet-Part style)."""
    _evaluate(["part-corr"], Options(predictions, data, split, out, as_json, quiet, force, grid=grid))


@app.command("repeatability")
def repeatability(predictions: Optional[Path] = PREDICTIONS, data: Path = DATA, split: Optional[str] = SPLIT,
                  out: Optional[Path] = OUT, as_json: bool = JSON, quiet: bool = QUIET, force: bool = FORCE,
                  threshold: float = THRESHOLD, frame: Optional[str] = FRAME, method: Optional[str] = METHOD,
                  checkpoint: Optional[Path] = CHECKPOINT, num_keypoints: Optional[int] = NUM_KEYPOINTS,
                  perturbation: Optional[list[str]] = PERTURBATION, levels: Optional[str] = LEVELS,
                  seed: int = SEED, device: str = DEVICE) -> None:
    """Repeatability under noise, rotation and decimation: detect again and count keypoints that stay."""
    _evaluate(["repeatability"], Options(predictions, data, split, out, as_json, quiet, force, threshold, frame, 0,
                                         method, checkpoint, num_keypoints, perturbation or [], levels, seed, device))


@app.command("all")
def all_metrics(predictions: Optional[Path] = PREDICTIONS, data: Path = DATA, split: Optional[str] = SPLIT,
                out: Optional[Path] = OUT, as_json: bool = JSON, quiet: bool = QUIET, force: bool = FORCE,
                threshold: float = THRESHOLD, frame: Optional[str] = FRAME, grid: int = GRID,
                method: Optional[str] = METHOD, checkpoint: Optional[Path] = CHECKPOINT,
                num_keypoints: Optional[int] = NUM_KEYPOINTS, perturbation: Optional[list[str]] = PERTURBATION,
                levels: Optional[str] = LEVELS, seed: int = SEED, device: str = DEVICE) -> None:
    """Every metric the dataset supports, in one table (repeatability only with --method/--checkpoint)."""
    _evaluate(list(METRICS), Options(predictions, data, split, out, as_json, quiet, force, threshold, frame, grid,
                                     method, checkpoint, num_keypoints, perturbation or [], levels, seed, device),
              skip_unsupported=True)


# ---------------------------------------------------------------------------------------------------------------


def _evaluate(metrics: list[str], opt: Options, skip_unsupported: bool = False) -> None:
    from kptool.data.prepared import SPLITS, PreparedDataset
    from kptool.io.predictions import read_predictions

    if opt.frame is not None and opt.frame not in FRAMES:
        raise KptoolError(f"unknown --frame {opt.frame!r}: expected prepared or original")
    wants_detector = "repeatability" in metrics and (opt.method or opt.checkpoint)
    if opt.predictions is None and not (metrics == ["repeatability"] and wants_detector):
        need = "--method or --checkpoint (repeatability) or " if "repeatability" in metrics else ""
        raise KptoolError(f"kptool eval {_name(metrics)}: give {need}a PREDICTIONS file")
    preds = None if opt.predictions is None else read_predictions(opt.predictions)
    if opt.split is None:
        opt = replace(opt, split=preds.split if preds is not None and preds.split in SPLITS else "all")
    dataset = PreparedDataset(opt.data, opt.split)
    shapes, keypoints, preds = _load(opt, dataset, preds)
    out = _out_folder(opt, metrics)

    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    files: list[Path] = []
    try:
        for metric in metrics:
            if metric == "repeatability" and skip_unsupported and not wants_detector:
                skipped[metric] = "needs --method or --checkpoint to detect again"
                continue
            try:
                results[metric] = _METRIC_FUNCS[metric](opt, dataset, shapes, keypoints, preds, out, files)
            except KptoolError as e:
                if not skip_unsupported:
                    raise
                skipped[metric] = str(e)
        if not results:
            raise KptoolError("no metric could be computed: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
        if keypoints is not None and opt.grid > 0:
            n = min(opt.grid, len(shapes))
            from kptool.viz import plot_keypoint_grid

            files.append(plot_keypoint_grid([s.points for s in shapes[:n]], keypoints[:n], out / "keypoints.png",
                                            titles=[s.id[:16] for s in shapes[:n]]))
    except BaseException:
        _remove_partial(out, files)
        raise
    report = {
        "dataset": str(opt.data), "split": opt.split, "num_shapes": len(shapes),
        "predictions": None if opt.predictions is None else str(opt.predictions),
        "method": preds.method if preds is not None else (opt.method or str(opt.checkpoint)),
        "metrics": results, "skipped": skipped, "files": [str(f) for f in files],
    }
    if opt.as_json:
        print_json(report)
    else:
        _print_tables(report)
        info(f"wrote {len(files)} files to {out}", opt.quiet)


def _remove_partial(out: Path, files: list[Path]) -> None:
    """A failed evaluation leaves no files of its own behind (and no folder it made empty)."""
    for f in files:
        Path(f).unlink(missing_ok=True)
    try:
        out.rmdir()   # only when empty: files that were there before stay
    except OSError:
        pass


def _name(metrics: list[str]) -> str:
    return metrics[0] if len(metrics) == 1 else "all"


def _load(opt: Options, dataset, preds):
    """The shapes to evaluate and their predicted keypoints (prepared frame), or all shapes if no predictions."""
    from kptool.data.prepared import PreparedDataset
    from kptool.io.predictions import to_prepared_frame

    if preds is None:
        if len(dataset) == 0:
            raise InputError(opt.data, f"has no shapes in split {opt.split!r}")
        return list(dataset), None, None
    if not preds.keypoints:
        raise InputError(opt.predictions, "has no shapes")
    if all(len(k) == 0 for k in preds.keypoints.values()):
        raise InputError(opt.predictions, "has no keypoints on any shape")
    everything = PreparedDataset(opt.data)
    known = set(everything.ids)
    unknown = [sid for sid in preds.ids if sid not in known]
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise InputError(opt.predictions, f"shape(s) {', '.join(unknown[:3])}{more} are not in the dataset {opt.data}")
    preds = to_prepared_frame(preds, everything)
    ids = [sid for sid in dataset.ids if sid in preds.keypoints]
    if not ids:
        raise InputError(opt.predictions, f"has no shapes of split {opt.split!r} of {opt.data}")
    missing = len(dataset) - len(ids)
    if missing:
        info(f"[yellow]note:[/] {missing} shapes of split {opt.split!r} have no predictions and are left out",
             opt.quiet or opt.as_json)
    shapes = [dataset[dataset.index_of(sid)] for sid in ids]
    return shapes, [np.asarray(preds.keypoints[sid], dtype=np.float64) for sid in ids], preds


def _out_folder(opt: Options, metrics: list[str]) -> Path:
    if opt.out is not None:
        out = opt.out
    elif opt.predictions is not None:
        out = opt.predictions.with_name(opt.predictions.stem + ".eval")
    else:
        out = Path(f"repeatability-{opt.method or opt.checkpoint.stem}.eval")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not opt.force:
        raise OutputError(f"{out}: folder is not empty (use --force to overwrite, or --out elsewhere)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_csv(path: Path, header: list[str], rows) -> Path:
    from kptool.io.atomic import write_text

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return write_text(path, buf.getvalue())


def _require_keypoints(shapes, metric: str) -> None:
    if not any(s.num_keypoints for s in shapes):
        raise KptoolError(f"{metric} needs keypoint annotations, and the evaluated shapes have none")


def _run_das(opt, dataset, shapes, keypoints, preds, out, files) -> dict:
    from kptool.metrics import dual_alignment_score

    _require_keypoints(shapes, "das")
    ids = [np.zeros(0, np.int64) if s.keypoint_ids is None else s.keypoint_ids for s in shapes]
    annotated = [np.zeros((0, 3)) if s.keypoints is None else s.keypoints for s in shapes]
    result = dual_alignment_score(keypoints, annotated, ids)
    names = dataset.manifest.get("keypoint_names", {})
    breakdown = result.breakdown()
    for slot in breakdown["by_slot"]:
        for label in slot["labels"]:
            label["name"] = names.get(str(label["id"]))
    for entry in breakdown["by_id"]:
        entry["name"] = names.get(str(entry["id"]))
    files.append(_write_csv(out / "das_by_slot.csv", ["slot", "forward", "mean_distance", "id", "name", "share"],
                            [(s["slot"], s["forward"], s["mean_distance"], lab["id"], lab["name"] or "", lab["share"])
                             for s in breakdown["by_slot"] for lab in s["labels"]]))
    files.append(_write_csv(out / "das_by_id.csv", ["id", "name", "backward", "occurrences", "mean_distance",
                                                    "slot", "share"],
                            [(i["id"], i["name"] or "", i["backward"], i["occurrences"], i["mean_distance"],
                              sl["slot"], sl["share"]) for i in breakdown["by_id"] for sl in i["slots"]]))
    return {**result.to_dict(), **breakdown}


def _scales(shapes, frame: str) -> Optional[list[float]]:
    return [s.meta["transform"].scale for s in shapes] if frame == "original" else None


def _run_miou(opt, dataset, shapes, keypoints, preds, out, files) -> dict:
    from kptool.data.geodesics import KEYPOINT_TABLE
    from kptool.data.prepared import extra_path
    from kptool.metrics import KEYPOINTNET_THRESHOLDS, SKELETON_MERGER_THRESHOLDS, geodesic_miou_curve, miou_curve
    from kptool.metrics._common import nearest_index
    from kptool.viz import plot_curves

    _require_keypoints(shapes, "miou")
    frame = opt.frame or "original"
    annotated = [np.zeros((0, 3)) if s.keypoints is None else s.keypoints for s in shapes]
    points = [s.points for s in shapes]
    scales = _scales(shapes, frame)
    thresholds = np.union1d(SKELETON_MERGER_THRESHOLDS, [opt.threshold])
    curve = miou_curve(keypoints, annotated, thresholds, points=points, scales=scales)
    result = {"frame": frame, "threshold": opt.threshold,
              "euclidean": {"at_threshold": curve.at(opt.threshold), **_curve_json(curve, "threshold", "iou")}}
    files.append(_write_csv(out / "miou_euclidean.csv", ["threshold", "iou"], zip(curve.x, curve.y)))
    plotted = {"Euclidean (Skeleton Merger)": (curve.x, curve.y)}

    if KEYPOINT_TABLE in dataset.manifest.get("extras", {}):
        tables = []
        for s in shapes:
            path = extra_path(dataset.root, KEYPOINT_TABLE, s.id)
            tables.append(np.load(path, allow_pickle=False) if path.is_file() else None)
        if all(t is not None for t in tables):
            snapped = [nearest_index(k, np.asarray(p, np.float64)) for k, p in zip(keypoints, points)]
            g_thresholds = np.union1d(KEYPOINTNET_THRESHOLDS, [opt.threshold])
            geo = geodesic_miou_curve(snapped, tables, g_thresholds, scales=scales)
            result["geodesic"] = {"at_threshold": geo.at(opt.threshold), **_curve_json(geo, "threshold", "iou")}
            files.append(_write_csv(out / "miou_geodesic.csv", ["threshold", "iou"], zip(geo.x, geo.y)))
            plotted["geodesic (KeypointNet)"] = (geo.x, geo.y)
        else:
            result["geodesic_skipped"] = "some shapes have no geodesic table (run `kptool prepare geodesics`)"
    else:
        result["geodesic_skipped"] = "the dataset has no geodesic tables (run `kptool prepare geodesics`)"
    files.append(plot_curves(plotted, out / "miou.png", f"distance threshold ({frame} frame)", "IoU",
                             "keypoint mIoU"))
    return result


def _run_part_corr(opt, dataset, shapes, keypoints, preds, out, files) -> dict:
    from kptool.metrics import part_correspondence_ratio

    with_labels = [i for i, s in enumerate(shapes) if s.point_labels is not None]
    if not with_labels:
        raise KptoolError("part-corr needs per-point part labels, and the evaluated shapes have none")
    result = part_correspondence_ratio([keypoints[i] for i in with_labels], [shapes[i].points for i in with_labels],
                                       [shapes[i].point_labels for i in with_labels])
    files.append(_write_csv(out / "part_correspondence.csv", ["keypoint", "ratio"], enumerate(result.per_index)))
    return {**result.to_dict(), "num_shapes": len(with_labels)}


def _detector(opt: Options):
    if opt.method and opt.checkpoint:
        raise KptoolError("give either --method or --checkpoint, not both")
    if opt.method:
        from kptool.baselines import get_baseline

        return get_baseline(opt.method, opt.num_keypoints, seed=opt.seed)
    from kptool.device import resolve_device
    from kptool.detect import load_detector  # provided by the detection engine

    return load_detector(opt.checkpoint, resolve_device(opt.device))


def _run_repeatability(opt, dataset, shapes, keypoints, preds, out, files) -> dict:
    from kptool.metrics import PERTURBATIONS, repeatability
    from kptool.viz import plot_curves

    if not (opt.method or opt.checkpoint):
        raise KptoolError("repeatability needs --method or --checkpoint to detect again")
    perturbations = opt.perturbations or list(PERTURBATIONS)
    bad = [p for p in perturbations if p not in PERTURBATIONS]
    if bad:
        raise KptoolError(f"unknown --perturbation {bad[0]!r}: expected one of {', '.join(PERTURBATIONS)}")
    levels = None
    if opt.levels is not None:
        if len(perturbations) != 1:
            raise KptoolError("--levels needs exactly one --perturbation (their units differ)")
        try:
            levels = [float(v) for v in opt.levels.split(",")]
        except ValueError:
            raise KptoolError(f"--levels must be comma-separated numbers, got {opt.levels!r}") from None
    detector = _detector(opt)
    frame = opt.frame or "prepared"
    result: dict[str, Any] = {"frame": frame, "threshold": opt.threshold, "detector": detector.name,
                              "ordered": bool(detector.ordered)}
    units = {"noise": "noise sigma (prepared frame)", "rotation-up": "rotation about the up axis (degrees)",
             "rotation-so3": "rotation about a random axis (degrees)", "decimation": "share of points dropped",
             "translation": "translation (prepared frame)", "scale": "scale factor"}
    for p in perturbations:
        info(f"repeatability under {p} ({len(shapes)} shapes)...", opt.quiet or opt.as_json)
        curve = repeatability(detector, [s.points for s in shapes], p, levels, opt.threshold, opt.seed,
                              scales=_scales(shapes, frame), normalize=getattr(detector, "normalize", "skeleton-merger"))
        result[p] = _curve_json(curve, "level", "repeatability")
        files.append(_write_csv(out / f"repeatability_{p}.csv", ["level", "repeatability"], zip(curve.x, curve.y)))
        files.append(plot_curves({detector.name: (curve.x, curve.y)}, out / f"repeatability_{p}.png", units[p],
                                 f"repeatability (moved < {opt.threshold:g})", f"repeatability under {p}"))
    return result


def _curve_json(curve, x_name: str, y_name: str) -> dict:
    return {x_name: curve.x.tolist(), y_name: curve.y.tolist()}


_METRIC_FUNCS = {"das": _run_das, "miou": _run_miou, "part-corr": _run_part_corr,
                 "repeatability": _run_repeatability}


def _print_tables(report: dict) -> None:
    from rich.table import Table

    m = report["metrics"]
    table = Table(title=f"{report['method'] or 'keypoints'} on {report['dataset']} "
                        f"({report['num_shapes']} shapes, split {report['split']})")
    table.add_column("metric")
    table.add_column("value (%)", justify="right")
    table.add_column("notes")
    if "das" in m:
        table.add_row("DAS (mean)", f"{100 * m['das']['das']:.2f}", "mean of forward and backward")
        table.add_row("  forward alignment", f"{100 * m['das']['forward']:.2f}", "")
        table.add_row("  backward alignment", f"{100 * m['das']['backward']:.2f}", "")
    if "miou" in m:
        r = m["miou"]
        table.add_row(f"mIoU @ {r['threshold']:g}", f"{100 * r['euclidean']['at_threshold']:.2f}",
                      f"Euclidean, {r['frame']} frame")
        if "geodesic" in r:
            table.add_row(f"geodesic mIoU @ {r['threshold']:g}", f"{100 * r['geodesic']['at_threshold']:.2f}",
                          f"KeypointNet, {r['frame']} frame")
        else:
            table.add_row("geodesic mIoU", "-", r["geodesic_skipped"])
    if "part-corr" in m:
        table.add_row("part correspondence", f"{100 * m['part-corr']['ratio']:.2f}",
                      f"{m['part-corr']['num_shapes']} part-labelled shapes")
    if "repeatability" in m:
        r = m["repeatability"]
        for p, curve in r.items():
            if isinstance(curve, dict):
                y = curve["repeatability"]
                table.add_row(f"repeatability ({p})", f"{100 * float(np.mean(y)):.2f}",
                              f"mean over {len(y)} levels; moved < {r['threshold']:g}, {r['detector']}")
    for metric, reason in report["skipped"].items():
        table.add_row(metric, "-", f"skipped: {reason}")
    stdout.print(table)

    if "das" in m:
        slots = Table(title="forward alignment per keypoint slot (per id: das_by_id.csv)")
        slots.add_column("slot", justify="right")
        slots.add_column("forward (%)", justify="right")
        slots.add_column("nearest annotation: share of shapes")
        slots.add_column("mean distance", justify="right")
        for s in m["das"]["by_slot"]:
            labels = ", ".join((f"{lab['name']} ({lab['id']})" if lab["name"] else f"id {lab['id']}")
                               + f" {100 * lab['share']:.0f}%" for lab in s["labels"][:3])
            more = len(s["labels"]) - 3
            slots.add_row(str(s["slot"]), f"{100 * s['forward']:.1f}", labels + (f", +{more} more" if more > 0 else ""),
                          f"{s['mean_distance']:.3f}")
        stdout.print(slots)

    if "miou" in m:
        r = m["miou"]
        curve = Table(title="mIoU curve (full curves in the CSV files)")
        curve.add_column("threshold", justify="right")
        curve.add_column("Euclidean IoU (%)", justify="right")
        x, y = r["euclidean"]["threshold"], r["euclidean"]["iou"]
        for i in sorted(set(range(0, len(x), 5)) | {len(x) - 1}):
            curve.add_row(f"{x[i]:.4f}", f"{100 * y[i]:.2f}")
        stdout.print(curve)
    if "repeatability" in m:
        for p, c in m["repeatability"].items():
            if isinstance(c, dict):
                t = Table(title=f"repeatability under {p}")
                t.add_column("level", justify="right")
                t.add_column("repeatable (%)", justify="right")
                for lv, v in zip(c["level"], c["repeatability"]):
                    t.add_row(f"{lv:g}", f"{100 * v:.2f}")
                stdout.print(t)
