"""`kptool render` and `kptool refine-camera`: images from shapes, cameras from silhouettes."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from kptool.cli.common import exit_if_failed, info, print_json, report_failures, run_with_progress
from kptool.errors import KptoolError


def _pair(text: str, option: str) -> tuple[float, float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise KptoolError(f"{option} must be a number or MIN,MAX, got {text!r}")
    return values[0], values[1]


def render(
    dataset: Path = typer.Argument(..., help="A prepared dataset folder (kptool prepare)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created; re-run the same command to resume)."),
    views: int = typer.Option(20, "--views", help="Cameras per shape."),
    size: int = typer.Option(256, "--size", help="Image width and height in pixels."),
    elevation: str = typer.Option("0,180", "--elevation",
                                  help="Polar angle from +y, MIN,MAX degrees (0,180 = the whole sphere)."),
    distance: str = typer.Option("2.08", "--distance",
                                 help="Camera distance in shape sizes (half the longest box side), D or MIN,MAX."),
    fov: float = typer.Option(90.0, "--fov", help="Field of view in degrees."),
    background: str = typer.Option("white", "--background", help="white, black or random (a seeded gradient)."),
    colors: str = typer.Option("auto", "--colors",
                               help="auto (the mesh file's materials/textures when it has them) or parts."),
    split: str = typer.Option("all", "--split", help="train, val, test or all."),
    seed: int = typer.Option(0, "--seed", help="Seed for cameras and backgrounds."),
    workers: int = typer.Option(1, "--workers", "-j", help="Parallel worker processes (0 = one per CPU core)."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first shape that fails."),
    force: bool = typer.Option(False, "--force", help="Replace renders in --out made with other arguments."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Render every shape of a prepared dataset: RGB, silhouette, depth, normals, cameras, 2D keypoints."""
    from kptool.render.camera import ViewSampling
    from kptool.render.dataset import RenderOptions, run_render

    sampling = ViewSampling(views=views, elevation=_pair(elevation, "--elevation"),
                            distance=_pair(distance, "--distance"), fov=fov, size=size)
    options = RenderOptions(sampling=sampling, background=background, colours=colors, seed=seed, split=split)
    workers = (os.cpu_count() or 1) if workers == 0 else workers
    summary = run_with_progress(
        "render", quiet or as_json,
        lambda report: run_render(dataset, out, options, workers=workers, strict=strict, force=force,
                                  progress=report),
        f"finished shapes are kept in {out}; run the same command again to resume")
    if as_json:
        print_json(summary.to_json())
        exit_if_failed(summary.failed)
        return
    info(f"rendered {summary.rendered} shapes" + (f" (+{summary.skipped} from an earlier run)" if summary.skipped
                                                  else "")
         + f", {summary.images} images, into {out} in {summary.seconds:.1f}s", quiet)
    report_failures(summary.failed, "shapes", out / "failures.json", quiet)


def refine_camera(
    mesh: Path = typer.Argument(..., help="A mesh file (.obj .ply .off .stl .glb ...)."),
    silhouette: Path = typer.Option(..., "--silhouette", "-s", help="Target mask image (square; white = shape)."),
    azimuth: float = typer.Option(..., "--azimuth", help="Initial azimuth, degrees."),
    elevation: float = typer.Option(..., "--elevation", help="Initial elevation (polar angle from +y), degrees."),
    distance: float = typer.Option(2.08, "--distance", help="Initial distance in shape sizes (as kptool render)."),
    fov: float = typer.Option(90.0, "--fov", help="Field of view in degrees."),
    steps: int = typer.Option(30, "--steps", help="Gradient steps (Adam)."),
    lr: float = typer.Option(0.01, "--lr", help="Adam learning rate (radians; relative distance)."),
    sigma: float = typer.Option(0.1, "--sigma", help="Softness of the silhouette, squared pixels."),
    only_distance: bool = typer.Option(False, "--only-distance",
                                       help="Refine the distance only, as the authors' released code does."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Refine a camera by gradient steps so that the mesh's silhouette matches a target mask."""
    import math

    from kptool.device import resolve_device
    from kptool.io.shapes import load_mesh
    from kptool.render.camera import Camera
    from kptool.render.materials import from_arrays
    from kptool.render.refine import read_silhouette
    from kptool.render.refine import refine_camera as refine

    if steps < 0 or lr <= 0 or sigma <= 0 or distance <= 0 or not 1 <= fov < 180:
        raise KptoolError("--steps must be >= 0 and --lr, --sigma, --distance positive, --fov in [1, 180)")
    target = read_silhouette(silhouette)
    body = from_arrays(*load_mesh(mesh))
    camera = Camera(math.radians(azimuth), math.radians(elevation), distance * body.size, tuple(body.centre),
                    math.radians(fov), target.shape[0])
    params = ("distance",) if only_distance else ("azimuth", "elevation", "distance")
    result = refine(body.vertices, body.faces, target, camera, steps, lr, params, sigma, resolve_device(device))
    c = result.camera
    report = {"azimuth": math.degrees(c.azimuth), "elevation": math.degrees(c.elevation),
              "distance": c.distance / body.size, "refined": list(params), "loss_before": result.losses[0],
              "loss_after": result.losses[-1], "iou_before": result.iou_before, "iou_after": result.iou_after}
    if as_json:
        print_json(report)
        return
    info(f"azimuth {report['azimuth']:.2f} deg, elevation {report['elevation']:.2f} deg, distance "
         f"{report['distance']:.4f} shape sizes; silhouette IoU {result.iou_before:.3f} -> {result.iou_after:.3f}")
