"""`kptool detect`: keypoints for shape files, folders of them, or a prepared dataset split."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from kptool.cli.common import info, list_failures, print_json, report_failures, show_warnings
from kptool.errors import KptoolError

FORMATS = ("json", "ply", "npz")
PNG_GRID_MAX = 16   # shapes drawn in the PNG of a folder or dataset


def detect(
    input: Path = typer.Argument(..., help="Mesh or point cloud file, a folder of them, or a prepared dataset."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Run folder or .pt checkpoint/"
                                              "weights file."),
    category: Optional[str] = typer.Option(None, "--category", "-c", help="Use the default weights of a built-in "
                                           "category."),
    method: str = typer.Option("checkpoint", "--method", "-m", help="checkpoint (trained model), a classical "
                               "detector: iss, harris3d, fps, random; or embeddings: shot, random-embedding."),
    keypoints: Optional[int] = typer.Option(None, "--keypoints", "-k", help="Keypoints per shape (classical "
                                            "methods)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file (.json, .ply, .npz) or, for a "
                                       "folder input with --format ply/npz, a folder. Default: JSON on stdout."),
    format: Optional[str] = typer.Option(None, "--format", help="json, ply or npz (default: from --out's suffix, "
                                         "else json)."),
    png: Optional[Path] = typer.Option(None, "--png", help="Also draw the keypoints on the shape(s) into this PNG."),
    split: str = typer.Option("test", "--split", help="Split of a prepared dataset input."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Prepared dataset input: which output of the method to "
                                       "write (keypoints, embeddings...; default keypoints when it has them)."),
    up: str = typer.Option("y", "--up", help="Up axis of raw input files: y or z."),
    points: Optional[int] = typer.Option(None, "--points", help="Points sampled per raw input (default: what the "
                                         "model was trained on, else 2048)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    seed: int = typer.Option(0, "--seed", help="Seeds surface sampling and the random method."),
    batch_size: int = typer.Option(16, "--batch-size", help="Shapes per forward pass of a trained model."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing output files."),
    strict: bool = typer.Option(False, "--strict", help="Folder input: stop at the first file that cannot be read "
                                "(default: go on, list it, exit code 3)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages."),
    json_: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout (with --out)."),
) -> None:
    """Detect keypoints; outputs are in the input's own frame (prepared frame for a dataset)."""
    fmt = _output_format(format, out)
    if batch_size < 1:
        raise KptoolError(f"--batch-size must be at least 1, got {batch_size}")
    if not input.exists():
        raise KptoolError(f"{input}: no such file or folder")
    with show_warnings(quiet):
        _detect(input, checkpoint, category, method, keypoints, out, fmt, png, split, kind, up, points, device,
                seed, batch_size, force, strict, quiet, json_)


def _detect(input, checkpoint, category, method, keypoints, out, fmt, png, split, kind, up, points, device, seed,
            batch_size, force, strict, quiet, json_) -> None:
    from kptool.data.prepared import MANIFEST
    from kptool.detect import detect_dataset, detect_files, get_detector, input_files
    from kptool.detect.run import predictions_of
    from kptool.failures import FAILURES_FILE, Failures
    from kptool.io.atomic import check_outputs
    from kptool.io.predictions import INLINE, arrays_path

    detector = get_detector(method, checkpoint, category, keypoints, device, seed, batch_size)
    failures = Failures(strict)
    if input.is_dir() and (input / MANIFEST).is_file():
        if fmt != "json":
            raise KptoolError(f"a prepared dataset gives a predictions file: use .json, not {fmt}")
        preds = detect_dataset(detector, input, split, kind)
        if png is not None and preds.kind != "keypoints":
            raise KptoolError(f"--png draws keypoints; {detector.name} predicts {preds.kind}")
        npz = arrays_path(out) if out is not None and preds.kind not in INLINE else None
        check_outputs([p for p in (png, out, npz) if p is not None], force)
        if png is not None:
            from kptool.data.prepared import PreparedDataset

            ds = PreparedDataset(input, split)
            ids = preds.ids[:PNG_GRID_MAX]
            _plot(png, [ds[ds.index_of(i)].points for i in ids], [preds.keypoints[i] for i in ids], ids)
        written = _emit_predictions(preds, out, force)
        count = len(preds.ids)
    else:
        files = input_files(input)
        found = detect_files(detector, files, points=points, up=up, seed=seed,
                             failures=failures if input.is_dir() else None)
        if not found:
            list_failures(failures.records, "files", None, quiet)
            raise KptoolError(f"{input}: none of its {len(files)} shape files could be read")
        targets = _keypoint_targets(found, input, out, fmt) if fmt != "json" else []
        failures_path = None
        if len(failures) and out is not None:
            failures_path = (out if targets and input.is_dir() else out.parent) / FAILURES_FILE
        # every output is checked before any is written
        check_outputs([p for p in (png, out if fmt == "json" else None, failures_path) if p is not None] + targets,
                      force)
        if png is not None:
            base = input if input.is_dir() else input.parent
            _plot(png, [d.prepared.points for d in found], [d.prepared_keypoints for d in found],
                  [d.source.relative_to(base).as_posix() for d in found])
        if fmt == "json":
            written = _emit_predictions(predictions_of(found, detector, input), out, force)
        else:
            written = _write_keypoint_files(found, targets, force)
        if failures_path is not None:
            written.append(str(failures.write(failures_path, overwrite=force)))
        count = len(found)
    written = ([str(png)] if png is not None else []) + written

    if json_ and out is not None:
        print_json({"method": detector.name, "ordered": detector.ordered, "shapes": count, "written": written,
                    "failures": failures.records})
    elif out is not None:
        info(f"{count} shape(s): wrote {', '.join(written)}", quiet)
    report_failures(failures.records, "files", failures_path if len(failures) and out is not None else None,
                    quiet or (json_ and out is not None))


def _plot(png: Path, clouds, keypoints, titles) -> None:
    """One shape, or a grid of the first ``PNG_GRID_MAX`` (prepared frame, y up)."""
    from kptool.viz import plot_keypoint_grid, plot_keypoints

    if len(clouds) == 1:
        plot_keypoints(clouds[0], keypoints[0], png, title=titles[0])
    else:
        n = PNG_GRID_MAX
        plot_keypoint_grid(clouds[:n], keypoints[:n], png, titles=titles[:n])


def _output_format(format: Optional[str], out: Optional[Path]) -> str:
    if format is not None:
        if format not in FORMATS:
            raise KptoolError(f"unknown --format {format!r}: expected one of {', '.join(FORMATS)}")
        return format
    suffix = out.suffix.lower().lstrip(".") if out is not None else ""
    if suffix and suffix not in FORMATS:
        raise KptoolError(f"{out}: unknown output suffix .{suffix} (use .json, .ply or .npz, or --format)")
    return suffix or "json"


def _emit_predictions(preds, out: Optional[Path], force: bool) -> list[str]:
    """Write the predictions JSON to ``out``, or to stdout when there is no ``out``."""
    from kptool.io.predictions import predictions_json, write_predictions

    if out is not None:
        write_predictions(out, preds, overwrite=force)
        return [str(out)]
    sys.stdout.write(predictions_json(preds) + "\n")
    return []


def _keypoint_targets(found, input: Path, out: Optional[Path], fmt: str) -> list[Path]:
    """PLY/NPZ: ``out`` for a single input, else ``out/<relative folder>/<stem>.keypoints.<fmt>`` per input."""
    if out is None:
        raise KptoolError(f"--format {fmt} needs --out (only JSON goes to stdout)")
    if input.is_file():
        return [out]
    if out.exists() and not out.is_dir():
        raise KptoolError(f"{out}: for a folder input, --out must be a folder")
    rel = [d.source.relative_to(input) for d in found]
    targets = [out / r.parent / f"{r.stem}.keypoints.{fmt}" for r in rel]
    if len(set(targets)) < len(targets):
        raise KptoolError(f"{input}: files differing only in suffix would write the same {fmt} file; "
                          f"use JSON output or separate folders")
    return targets


def _write_keypoint_files(found, targets: list[Path], force: bool) -> list[str]:
    from kptool.io import write_keypoints

    for d, target in zip(found, targets):
        write_keypoints(target, d.keypoints, points=d.input_points, overwrite=force)
    return [str(t) for t in targets]
