"""`kptool detect`: keypoints for shape files, folders of them, or a prepared dataset split."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from kptool.cli.common import info, print_json
from kptool.errors import KptoolError

FORMATS = ("json", "ply", "npz")
PNG_GRID_MAX = 16   # shapes drawn in the PNG of a folder or dataset


def detect(
    input: Path = typer.Argument(..., help="Mesh or point cloud file, a folder of them, or a prepared dataset."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Run folder or .pt checkpoint/"
                                              "weights file."),
    category: Optional[str] = typer.Option(None, "--category", help="Use the default weights of a built-in "
                                           "category."),
    method: str = typer.Option("checkpoint", "--method", help="checkpoint (trained model) or a classical "
                               "detector: iss, harris3d, fps, random."),
    keypoints: Optional[int] = typer.Option(None, "--keypoints", "-k", help="Keypoints per shape (classical "
                                            "methods)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file (.json, .ply, .npz) or, for a "
                                       "folder input with --format ply/npz, a folder. Default: JSON on stdout."),
    format: Optional[str] = typer.Option(None, "--format", help="json, ply or npz (default: from --out's suffix, "
                                         "else json)."),
    png: Optional[Path] = typer.Option(None, "--png", help="Also draw the keypoints on the shape(s) into this PNG."),
    split: str = typer.Option("test", "--split", help="Split of a prepared dataset input."),
    up: str = typer.Option("y", "--up", help="Up axis of raw input files: y or z."),
    points: Optional[int] = typer.Option(None, "--points", help="Points sampled per raw input (default: what the "
                                         "model was trained on, else 2048)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    seed: int = typer.Option(0, "--seed", help="Seeds surface sampling and the random method."),
    batch_size: int = typer.Option(16, "--batch-size", help="Shapes per forward pass of a trained model."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing output files."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages."),
    json_: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout (with --out)."),
) -> None:
    """Detect keypoints; outputs are in the input's own frame (prepared frame for a dataset)."""
    from kptool.data.prepared import MANIFEST
    from kptool.detect import detect_dataset, detect_files, get_detector, input_files
    from kptool.detect.run import predictions_of

    fmt = _output_format(format, out)
    if batch_size < 1:
        raise KptoolError(f"--batch-size must be at least 1, got {batch_size}")
    if not input.exists():
        raise KptoolError(f"{input}: no such file or folder")
    detector = get_detector(method, checkpoint, category, keypoints, device, seed, batch_size)
    written: list[str] = []

    if input.is_dir() and (input / MANIFEST).is_file():
        if fmt != "json":
            raise KptoolError(f"a prepared dataset gives a predictions file: use .json, not {fmt}")
        preds = detect_dataset(detector, input, split)
        if png is not None and preds.kind != "keypoints":
            raise KptoolError(f"--png draws keypoints; {detector.name} predicts {preds.kind}")
        if png is not None:
            from kptool.data.prepared import PreparedDataset
            from kptool.viz import plot_keypoint_grid

            ds = PreparedDataset(input, split)
            ids = preds.ids[:PNG_GRID_MAX]
            plot_keypoint_grid([ds[ds.index_of(i)].points for i in ids], [preds.keypoints[i] for i in ids], png,
                               titles=ids)
            written.append(str(png))
        _emit_predictions(preds, out, force, written)
        count = len(preds.ids)
    else:
        files = input_files(input)
        found = detect_files(detector, files, points=points, up=up, seed=seed)
        if png is not None:
            from kptool.viz import plot_keypoint_grid, plot_keypoints

            if len(found) == 1:
                plot_keypoints(found[0].prepared.points, found[0].prepared_keypoints, png, title=found[0].source.name)
            else:
                shown = found[:PNG_GRID_MAX]
                plot_keypoint_grid([d.prepared.points for d in shown], [d.prepared_keypoints for d in shown], png,
                                   titles=[d.source.name for d in shown])
            written.append(str(png))
        if fmt == "json":
            _emit_predictions(predictions_of(found, detector, input), out, force, written)
        else:
            written += _write_keypoint_files(found, input, out, fmt, force)
        count = len(found)

    if json_ and out is not None:
        print_json({"method": detector.name, "ordered": detector.ordered, "shapes": count, "written": written})
    elif out is not None:
        info(f"{count} shape(s): wrote {', '.join(written)}", quiet)


def _output_format(format: Optional[str], out: Optional[Path]) -> str:
    if format is not None:
        if format not in FORMATS:
            raise KptoolError(f"unknown --format {format!r}: expected one of {', '.join(FORMATS)}")
        return format
    suffix = out.suffix.lower().lstrip(".") if out is not None else ""
    if suffix and suffix not in FORMATS:
        raise KptoolError(f"{out}: unknown output suffix .{suffix} (use .json, .ply or .npz, or --format)")
    return suffix or "json"


def _emit_predictions(preds, out: Optional[Path], force: bool, written: list[str]) -> None:
    """Write the predictions JSON to ``out``, or to stdout when there is no ``out``."""
    from kptool.io.predictions import predictions_json, write_predictions

    if out is not None:
        write_predictions(out, preds, overwrite=force)
        written.append(str(out))
        return
    sys.stdout.write(predictions_json(preds) + "\n")


def _write_keypoint_files(found, input: Path, out: Optional[Path], fmt: str, force: bool) -> list[str]:
    """PLY/NPZ: one file for a single input, else ``out/<relative folder>/<stem>.keypoints.<fmt>`` per input."""
    from kptool.io import write_keypoints

    if out is None:
        raise KptoolError(f"--format {fmt} needs --out (only JSON goes to stdout)")
    if input.is_file():
        targets = [out]
    else:
        if out.exists() and not out.is_dir():
            raise KptoolError(f"{out}: for a folder input, --out must be a folder")
        rel = [d.source.relative_to(input) for d in found]
        targets = [out / r.parent / f"{r.stem}.keypoints.{fmt}" for r in rel]
        if len(set(targets)) < len(targets):
            raise KptoolError(f"{input}: files differing only in suffix would write the same {fmt} file; "
                              f"use JSON output or separate folders")
    for d, target in zip(found, targets):
        write_keypoints(target, d.keypoints, points=d.input_points, overwrite=force)
    return [str(t) for t in targets]
