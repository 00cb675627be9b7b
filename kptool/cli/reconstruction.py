"""`kptool eval reconstruction RENDERS --sketch RUN --voxels RUN`: single-view reconstruction quality."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kptool.cli.common import info, print_json, print_table, run_with_progress


def reconstruction(
    renders: Path = typer.Argument(..., help="A rendered dataset (kptool render) whose prepared dataset has voxel "
                                             "grids (kptool prepare voxels)."),
    sketch: Path = typer.Option(..., "--sketch", help="Sketch-estimator run folder or checkpoint (preset "
                                                      "sketch-resnet18)."),
    voxels: Path = typer.Option(..., "--voxels", help="3D-estimator run folder or checkpoint (preset "
                                                      "voxels-from-sketch)."),
    split: str = typer.Option("test", "--split", help="train, val, test or all."),
    views: Optional[int] = typer.Option(None, "--views", help="Only the first N views of each shape."),
    level: float = typer.Option(0.5, "--level", help="Marching-cubes level on occupancy probabilities (the "
                                                     "authors' code: 0.1)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for reconstruction.csv/.json "
                                                                 "[default: RENDERS name + '.reconstruction']."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    force: bool = typer.Option(False, "--force", help="Overwrite the output files of an earlier run."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or messages."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON only."),
) -> None:
    """Voxel IoU and Chamfer distance of single-view reconstructions of rendered views (and the sketch stage)."""
    from kptool.errors import KptoolError
    from kptool.reconstruct.pipeline import load_reconstructor
    from kptool.reconstruct.quality import COLUMNS, evaluate_reconstruction, write_report

    if views is not None and views < 1:
        raise KptoolError(f"--views must be at least 1, got {views}")
    rec = load_reconstructor(sketch, voxels, device=device, level=level)
    out = out or renders.with_name(renders.name + ".reconstruction")
    result = run_with_progress("reconstructing", quiet or as_json,
                               lambda report: evaluate_reconstruction(renders, rec, None if split == "all" else split,
                                                                      views, report), "nothing is written until the end")
    files = write_report(result, out, force)
    if as_json:
        print_json({k: v for k, v in result.items() if k != "rows"})
        return
    groups = [("all", result["mean"]), *result["by_category"].items()] if len(result["by_category"]) > 1 \
        else [("all", result["mean"])]
    print_table(f"reconstruction of {result['images']} views of {result['shapes']} shapes ({renders}, split {split}, "
                f"{result['resolution']}^3, level {level})",
                [("", "left"), *[(c, "right") for c in COLUMNS]],
                [(name, *("-" if m[c] is None else f"{m[c]:.4f}" for c in COLUMNS)) for name, m in groups])
    per = result["seconds_per_image"]
    info(f"seconds per image: {', '.join(f'{k} {v:.4f}' for k, v in per.items())}; empty reconstructions: "
         f"{result['empty']}; wrote {', '.join(files)}", quiet)
