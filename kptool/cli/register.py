"""`kptool register`: align one shape to another through a trained model's ordered keypoints."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kptool.cli.common import console, print_json, show_warnings
from kptool.errors import KptoolError


def register(
    source: Path = typer.Argument(..., help="Shape file to move (mesh or point cloud)."),
    target: Path = typer.Argument(..., help="Shape file to align it to."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Run folder or .pt checkpoint of a model with "
                                    "ordered keypoints."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the aligned source here (.ply)."),
    no_scale: bool = typer.Option(False, "--no-scale", help="Rigid fit (scale fixed to 1)."),
    up: str = typer.Option("y", "--up", help="Up axis of the files: y or z."),
    points: Optional[int] = typer.Option(None, "--points", help="Points sampled per file (default: the model's)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages."),
    json_: bool = typer.Option(False, "--json", help="Print the transform as JSON on stdout."),
) -> None:
    """Similarity transform (Umeyama) from SOURCE's keypoints to TARGET's, applied to SOURCE."""
    from kptool.detect import get_detector
    from kptool.io.atomic import check_writable
    from kptool.registration import register_files, write_aligned

    for p in (source, target):
        if not p.is_file():
            raise KptoolError(f"{p}: no such file")
    if out is not None:
        if out.suffix.lower() != ".ply":
            raise KptoolError(f"--out {out}: the aligned shape is written as .ply")
        check_writable(out, force)
    with show_warnings(quiet):
        detector = get_detector("checkpoint", checkpoint, device=device)
        result = register_files(detector, source, target, points=points, up=up, with_scale=not no_scale)
    if out is not None:
        write_aligned(out, result, overwrite=force)
    t = result.transform
    summary = {"source": str(source), "target": str(target), "scale": t.scale, "rotation": t.rotation,
               "translation": t.translation, "matrix": t.matrix(), "up_angle_deg": result.up_angle_deg(),
               "keypoint_rms": result.rms, "keypoints": len(result.source_keypoints),
               "out": None if out is None else str(out)}
    if json_:
        print_json(summary)
    elif not quiet:
        console.print(f"{source.name} -> {target.name}: scale {t.scale:.4f}, turn about up "
                      f"{result.up_angle_deg():+.1f} deg, translation {t.translation.round(4).tolist()}, "
                      f"keypoint RMS {result.rms:.4g} ({len(result.source_keypoints)} keypoints)"
                      + (f"; wrote {out}" if out else ""), highlight=False, soft_wrap=True)
