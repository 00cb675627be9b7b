"""`kptool eval viewpoint`: a viewpoint model's errors on a rendered dataset (:mod:`kptool.viewpoint`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from kptool.cli.common import info, print_json, print_table
from kptool.errors import KptoolError


def eval_viewpoint(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Run folder or .pt file of a viewpoint model "
                                    "(kptool train --preset viewpoint-resnet18)."),
    data: Path = typer.Option(..., "--data", "-d", help="Rendered dataset folder (kptool render)."),
    split: str = typer.Option("test", "--split", help="train, val, test or all."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for viewpoint.json, viewpoint.csv (per image) and "
                             "viewpoint-errors.png."),
    refine: bool = typer.Option(False, "--refine", help="Also refine each predicted camera against the true "
                                "silhouette (soft rasteriser) and report both."),
    only_distance: bool = typer.Option(False, "--only-distance", help="With --refine: refine the distance only, "
                                       "as the authors' released code does (angles, hence errors, unchanged)."),
    steps: int = typer.Option(30, "--steps", help="Refinement: gradient steps (Adam)."),
    lr: float = typer.Option(0.01, "--lr", help="Refinement: Adam learning rate (radians; relative distance)."),
    sigma: float = typer.Option(0.1, "--sigma", help="Refinement: softness of the silhouette, squared pixels."),
    azimuth_offset: float = typer.Option(0.0, "--azimuth-offset", help="Degrees added to predicted azimuths: the "
                                         "data's frame turned about +y from the training data's (see docs)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most this many views, evenly spaced over the "
                                        "split (refinement takes seconds per view on a CPU)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    force: bool = typer.Option(False, "--force", help="Overwrite the files of an earlier run in --out."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON only."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or messages."),
) -> None:
    """Viewpoint accuracy: median rotation error and Acc@pi/6 (Pascal3D+), error histograms; --refine adds
    the errors after silhouette refinement."""
    from kptool.cli.common import run_with_progress
    from kptool.viewpoint import REFINE_PARAMS, evaluate_viewpoints

    if steps < 0 or lr <= 0 or sigma <= 0 or batch_size < 1:
        raise KptoolError("--steps must be >= 0, --lr and --sigma positive, --batch-size at least 1")
    if only_distance and not refine:
        raise KptoolError("--only-distance goes with --refine")
    params = ("distance",) if only_distance else REFINE_PARAMS
    report = run_with_progress(
        "refining cameras", quiet or as_json,
        lambda report: evaluate_viewpoints(checkpoint, data, split, out, refine, params, steps, lr, sigma,
                                           math.radians(azimuth_offset), limit, device, batch_size, force,
                                           progress=lambda done, total: report(done, total, "")),
        "run the same command again")
    if as_json:
        print_json(report.to_dict())
        return
    rows = []
    for name, s in report.summary.items():
        rows.append((name, str(s["images"]), f"{s['rotation_error_median']:.2f}", f"{100 * s['acc_pi_6']:.1f}",
                     f"{s['azimuth_error_median']:.2f}", f"{s['elevation_error_median']:.2f}",
                     f"{s['iou_before_mean']:.3f} -> {s['iou_after_mean']:.3f}" if "iou_after_mean" in s else ""))
    print_table(f"viewpoint of {checkpoint} on {data} (split {report.split})",
                [("camera", "left"), ("images", "right"), ("median rotation error (deg)", "right"),
                 ("Acc@pi/6 (%)", "right"), ("median |azimuth error|", "right"),
                 ("median |elevation error|", "right"), ("silhouette IoU", "right")], rows)
    info(f"wrote {len(report.files)} files to {out}", quiet)
