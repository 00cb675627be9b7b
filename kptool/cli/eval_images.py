"""`kptool eval pck` and `kptool eval transfer-stages`: 2D keypoints on rendered images.

Both score against a rendered dataset (``kptool render``) rather than a prepared one;
the work is :mod:`kptool.metrics.pck` and :mod:`kptool.transfer.stages`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kptool.cli.common import info, print_json, print_table
from kptool.cli.eval import FORCE, JSON, QUIET   # the same options as every other eval command
from kptool.errors import KptoolError

RENDERS = typer.Option(..., "--data", "-d", help="Rendered dataset folder (kptool render) with the ground truth.")
SPLIT = typer.Option(None, "--split", help="Only images of this split: train, val, test or all "
                                           "[default: the predictions' split, else all].")
ALPHA = typer.Option(0.1, "--alpha", help="Threshold as a share of max(w, h) of the image or object box.")


def pck(predictions: Path = typer.Argument(..., help="keypoints_2d predictions file (kptool transfer writes one)."),
        data: Path = RENDERS, split: Optional[str] = SPLIT, alpha: float = ALPHA,
        out: Optional[Path] = typer.Option(None, "--out", "-o", show_default=False,
                                           help="Folder for pck.json, the curve (CSV, PNG) and per-id CSV "
                                                "[default: PREDICTIONS name + '.eval']."),
        as_json: bool = JSON, quiet: bool = QUIET, force: bool = FORCE) -> None:
    """PCK of 2D keypoints at alpha (image size and object box), and the curve over alpha."""
    from kptool.io.predictions import read_predictions
    from kptool.metrics.pck import evaluate_pck, write_pck_outputs

    if not 0 < alpha <= 1:
        raise KptoolError(f"--alpha must be in (0, 1], got {alpha}")
    preds = read_predictions(predictions)
    report = evaluate_pck(preds, data, split or preds.split or None, alpha, source=predictions)
    out = out or predictions.with_name(predictions.stem + ".eval")
    files = write_pck_outputs(report, out, force)
    if as_json:
        print_json(report.to_dict())
        return
    print_pck_table(f"{report.method or 'predictions'} on {data} ({report.images} images, "
                    f"{report.keypoints} visible keypoints)", [("", report)])
    if report.uncovered_images:
        info(f"note: {report.uncovered_images} images of the renders have no prediction and are not scored", quiet)
    info(f"wrote {len(files)} files to {out}", quiet)


def print_pck_table(title: str, rows) -> None:
    """One row per ``(label, PckReport)``: PCK at alpha (image, box), keypoints, missing, visibility agreement."""
    alpha = rows[0][1].alpha if rows else 0.1
    print_table(title, [("", "left"), (f"PCK@{alpha:g} image (%)", "right"), (f"PCK@{alpha:g} box (%)", "right"),
                        ("keypoints", "right"), ("missing", "right"), ("visibility agrees (%)", "right")],
                [(label or "all", f"{100 * r.pck_image:.2f}", f"{100 * r.pck_box:.2f}", str(r.keypoints),
                  str(r.missing), "-" if r.visibility_accuracy is None else f"{100 * r.visibility_accuracy:.2f}")
                 for label, r in rows])


def transfer_stages(
    data: Path = typer.Argument(..., help="Rendered dataset (kptool render) of annotated shapes."),
    embedding: Optional[str] = typer.Option(None, "--embedding", show_default=False,
                                            help="Dense-embedding run folder or .pt (its database names the "
                                                 "keypoints)."),
    reconstruction: Optional[str] = typer.Option(None, "--reconstruction", show_default=False,
                                                 help="Reconstruction run folder or .pt (rows without it are "
                                                      "skipped)."),
    viewpoint: Optional[str] = typer.Option(None, "--viewpoint", show_default=False,
                                            help="Viewpoint run folder or .pt [default: search, no network]."),
    models: Optional[Path] = typer.Option(None, "--models", show_default=False, help="Bundle folder of the three."),
    direct: Optional[str] = typer.Option(None, "--direct", show_default=False,
                                         help="A heatmap2d run: adds the direct 2D baseline's row."),
    rows: Optional[str] = typer.Option(None, "--rows", show_default=False,
                                       help="Comma-separated rows [default: all: full, shape-gt, viewpoint-gt, "
                                            "semantic-gt, shape+viewpoint-gt, all-gt, and direct-2d with --direct]."),
    split: str = typer.Option("test", "--split", help="Images of this split (or all)."),
    views: Optional[int] = typer.Option(None, "--views", help="The first N views per shape."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder: one transfer run per row, stages.csv/json."),
    size: int = typer.Option(128, "--size", help="Working resolution in pixels."),
    refine_steps: int = typer.Option(30, "--refine-steps", help="Adam steps of the silhouette refinement."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    as_json: bool = JSON, quiet: bool = QUIET, force: bool = FORCE,
) -> None:
    """Stage analysis (paper 004, Table 3): PCK with each stage replaced by its ground truth."""
    from kptool.cli.transfer import transfer_options
    from kptool.transfer.analysis import ROWS, analyse_stages
    from kptool.transfer.models import ModelChoice

    chosen = tuple(r.strip() for r in rows.split(",")) if rows else tuple(ROWS)
    base = ModelChoice(reconstruction, viewpoint, embedding, direct=direct).with_bundle(models)
    results = analyse_stages(data, base, out, chosen, split, views, transfer_options(size, refine_steps, False, device),
                             device, force, log=lambda m: info(m, quiet or as_json))
    if as_json:
        print_json([{"row": r.name, "skipped": r.skipped, **({} if r.report is None else r.report.to_dict())}
                    for r in results])
        return
    done = [(r.name, r.report) for r in results if r.report is not None]
    if done:
        print_pck_table(f"stage analysis on {data} (split {split})", done)
    for r in results:
        if r.skipped:
            info(f"{r.name}: not run: {r.skipped}", quiet)
    info(f"wrote {out / 'stages.csv'}", quiet)
