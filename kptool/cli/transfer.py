"""`kptool transfer`: 2D keypoints for images through a 3D shape (paper 004's 2D-3D-2D transfer)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kptool.cli.common import print_json, print_table, report_failures, run_with_progress
from kptool.errors import KptoolError

RECONSTRUCTION = typer.Option(None, "--reconstruction", show_default=False,
                              help="Single-view reconstruction: SKETCH,VOXELS (run folders or .pt) or a folder holding "
                                   "sketch and voxels; 'true' on renders: the true mesh.")
VIEWPOINT = typer.Option(None, "--viewpoint", show_default=False,
                         help="Viewpoint from RGB: run folder or .pt; 'search' (no network: best silhouette on a "
                              "grid); 'true' on renders: the true camera [default: the bundle's, else search].")
EMBEDDING = typer.Option(None, "--embedding", show_default=False,
                         help="Dense-embedding run folder or .pt whose database names the keypoints.")
MODELS = typer.Option(None, "--models", show_default=False,
                      help="Bundle folder holding reconstruction, viewpoint and embedding (run folders or .pt).")
SEMANTIC = typer.Option("database", "--semantic-model",
                        help="Keypoint database: 'database' (stored with the embedding model) or 'true' (on renders: "
                             "the true shape's own annotated points).")
SIZE = typer.Option(128, "--size", help="Working resolution in pixels (inputs are resized to it).")
STEPS = typer.Option(30, "--refine-steps", help="Adam steps of the silhouette refinement (0: none).")
ONLY_DISTANCE = typer.Option(False, "--only-distance", help="Refine the camera distance only (the authors' code).")
DEVICE = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N.")


def transfer(
    input: Path = typer.Argument(..., help="An image, a folder of images, or a rendered dataset (kptool render)."),
    category: Optional[str] = typer.Option(None, "--category", "-c", help="The object category (checked against "
                                           "the embedding model's)."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="The object's mask (an image; for a folder input a "
                                        "folder of masks with the same names) [default: from a plain background]."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (keypoints2d.json, overlays/, transfer.json)."),
    models: Optional[Path] = MODELS, reconstruction: Optional[str] = RECONSTRUCTION,
    viewpoint: Optional[str] = VIEWPOINT, embedding: Optional[str] = EMBEDDING, semantic_model: str = SEMANTIC,
    direct: Optional[Path] = typer.Option(None, "--direct", show_default=False,
                                          help="No 3D: keypoints straight from a heatmap2d run (the 2D baseline)."),
    split: Optional[str] = typer.Option(None, "--split", help="Rendered dataset input: only this split."),
    views: Optional[int] = typer.Option(None, "--views", help="Rendered dataset input: the first N views per shape."),
    size: int = SIZE, refine_steps: int = STEPS, only_distance: bool = ONLY_DISTANCE, device: str = DEVICE,
    overlays: bool = typer.Option(True, "--overlays/--no-overlays", help="Write an overlay PNG per image."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="Also draw the stage picture grid (input, shape, "
                                        "refined silhouette, keypoints) of the first 6 images into this PNG."),
    force: bool = typer.Option(False, "--force", help="Start over in an output folder of another run."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first image that fails."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
    json_: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Keypoints with semantic ids and visibility for images of one object category."""
    from kptool.transfer.models import ModelChoice, build_method
    from kptool.transfer.run import jobs_for, run_transfer

    options = transfer_options(size, refine_steps, only_distance, device)
    jobs = jobs_for(input, mask, split, views)
    choice = ModelChoice(reconstruction, viewpoint, embedding, semantic_model,
                         str(direct) if direct else None).with_bundle(models)
    method = build_method(choice, input, options, device, category)
    shown = []

    def keep(rgb, result) -> None:
        if grid is not None and len(shown) < 6:
            shown.append((rgb, result))

    state = {"input": str(input.resolve()), "split": split, "views": views, "mask": str(mask) if mask else None,
             "models": {k: getattr(choice, k) for k in ("reconstruction", "viewpoint", "embedding", "direct")}}
    summary = run_with_progress(
        "transfer", quiet,
        lambda report: run_transfer(jobs, method, out, force, strict or input.is_file(), overlays, state, report,
                                    keep),
        f"run the same command again to resume from {out}")
    if grid is not None and shown and choice.direct is None:
        from kptool.viz.transfer import plot_transfer_grid

        plot_transfer_grid(shown, grid)
    if json_:
        print_json(summary)
    elif not quiet:
        sec = summary["seconds_per_image"]
        print_table(f"transfer: {summary['done']} of {summary['images']} images into {out}",
                    [("stage", "left"), ("seconds per image", "right")],
                    [(k, f"{v:.3f}") for k, v in sec.items()])
    report_failures(summary["failures"], "images", out / "failures.json", quiet or json_)


def transfer_options(size: int, refine_steps: int, only_distance: bool, device: str):
    from kptool.transfer.pipeline import TransferOptions

    if not 32 <= size <= 1024:
        raise KptoolError(f"--size must be between 32 and 1024 pixels, got {size}")
    if refine_steps < 0:
        raise KptoolError(f"--refine-steps must be >= 0, got {refine_steps}")
    params = ("distance",) if only_distance else ("azimuth", "elevation", "distance")
    return TransferOptions(size=size, refine_size=min(64, size), refine_steps=refine_steps, refine_params=params,
                           device=device)
