"""`kptool prepare ...`: turn datasets or a folder of shapes into prepared training sets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kptool.cli.common import (exit_if_failed, info, print_json, report_failures, run_resumable,
                               run_with_progress, show_warnings, worker_count)
from kptool.errors import KptoolError
from kptool.failures import FAILURES_FILE

app = typer.Typer(help="Prepare shapes into a training set (sampling, FPS, normalisation, splits).",
                  no_args_is_help=True)

OUT = typer.Option(..., "--out", "-o", help="Output folder (created; re-run the same command to resume).")
POINTS = typer.Option(2048, "--points", help="Points per shape after farthest point sampling.")
NORMALIZE = typer.Option("skeleton-merger", "--normalize",
                         help="Frame: skeleton-merger (reference), fernandez, unit-sphere or none.")
SEED = typer.Option(0, "--seed", help="Seed for sampling and split assignment.")
SPLITS = typer.Option("0.8,0.1,0.1", "--splits", help="train,val,test fractions for shapes without an official split.")
WORKERS = typer.Option(1, "--workers", "-j", help="Parallel worker processes (0 = one per CPU core).")
STRICT = typer.Option(False, "--strict", help="Stop at the first shape that fails.")
FORCE = typer.Option(False, "--force", help="Replace a dataset prepared in --out with other arguments.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar or summary.")
JSON = typer.Option(False, "--json", help="Print the summary as JSON.")


def _up(value: Optional[str], default: str) -> str:
    return default if value is None else value


def _run(source, out: Path, points: int, normalize: str, up: str, seed: int, splits: str, workers: int,
         strict: bool, force: bool, quiet: bool, as_json: bool) -> None:
    from kptool.data.prepare import PrepareOptions, run_prepare

    try:
        fractions = tuple(float(x) for x in splits.split(","))
    except ValueError:
        raise KptoolError(f"--splits must look like 0.8,0.1,0.1, got {splits!r}") from None
    options = PrepareOptions(points=points, normalize=normalize, up=up, seed=seed, split_fractions=fractions)
    workers = worker_count(workers)
    with show_warnings(quiet or as_json):
        summary = run_resumable(
            f"prepare {source.kind}",
            lambda report: run_prepare(source, out, options, workers=workers, strict=strict, force=force,
                                       progress=report), out, quiet, as_json)
    c = summary.counts
    info(f"prepared {summary.prepared} shapes"
         + (f" (+{summary.skipped} from an earlier run)" if summary.skipped else "")
         + f" into {out} in {summary.seconds:.1f}s: train {c['train']}, val {c['val']}, test {c['test']}", quiet)
    report_failures(summary.failed, "shapes", out / FAILURES_FILE, quiet)


@app.command("synthetic")
def synthetic(
    category: str = typer.Option(..., "--category", "-c",
                                 help="Built-in category: chair, table, airplane, mug, figure (articulated); a comma list or 'all' "
                                      "pools them into one set labelled by category."),
    count: int = typer.Option(1000, "--count", "-n", help="Number of shapes (per category)."),
    out: Path = OUT, points: int = POINTS, normalize: str = NORMALIZE, seed: int = SEED, splits: str = SPLITS,
    workers: int = WORKERS, strict: bool = STRICT, force: bool = FORCE, quiet: bool = QUIET, as_json: bool = JSON,
) -> None:
    """Generate a built-in procedural category (meshes, part labels, ground-truth keypoints)."""
    from kptool.data.class_sources import SyntheticSetSource, parse_categories
    from kptool.data.sources import SyntheticSource

    pooled = "," in category or category.strip().lower() == "all"
    source = (SyntheticSetSource(tuple(parse_categories(category)), count, seed) if pooled
              else SyntheticSource(category, count, seed))
    _run(source, out, points, normalize, "y", seed, splits, workers, strict,
         force, quiet, as_json)


def _dataset_command(name: str, source_cls, help_text: str, category_required: bool = True, default_up: str = "y"):
    def command(
        root: Path = typer.Option(..., "--root", help="Dataset root folder."),
        category: Optional[str] = typer.Option(None if not category_required else ..., "--category", "-c",
                                               help="Category name (chair) or ShapeNet synset id (03001627)."),
        out: Path = OUT, points: int = POINTS, normalize: str = NORMALIZE,
        up: Optional[str] = typer.Option(None, "--up", help=f"Up axis of the source: y or z (default {default_up})."),
        seed: int = SEED, splits: str = SPLITS, workers: int = WORKERS, strict: bool = STRICT, force: bool = FORCE,
        quiet: bool = QUIET, as_json: bool = JSON,
    ) -> None:
        source = source_cls(str(root), category)
        _run(source, out, points, normalize, _up(up, default_up), seed, splits, workers, strict, force, quiet,
             as_json)

    command.__doc__ = help_text
    app.command(name)(command)


def _register() -> None:
    from kptool.data import class_sources, sources

    _dataset_command("keypointnet", sources.KeypointNetSource,
                     "KeypointNet: annotations + clouds (meshes when present, official splits when present).")
    _dataset_command("shapenet", sources.ShapeNetSource,
                     "ShapeNetCore.v2 meshes, surface-sampled.")
    _dataset_command("shapenet-part", sources.ShapeNetPartSource,
                     "ShapeNet-Part clouds with part labels (official splits when present).")
    _dataset_command("class-folders", class_sources.ClassFolderSource,
                     "A folder with one subfolder per class (<class>/[train|val|test/]<file>); shapes are labelled "
                     "by class. --category keeps only the listed classes.", category_required=False)
    _dataset_command("furniture", class_sources.FurnitureSource,
                     "The SweetHome3D furniture set (catalog.csv: class, fixed train/test split, licences). "
                     "--category keeps only the listed classes.", category_required=False)


_register()


@app.command("modelnet")
def modelnet(
    root: Path = typer.Option(..., "--root", help="Dataset root folder."),
    category: Optional[str] = typer.Option(None, "--category", "-c", help="Class folder name (chair); default all."),
    points_from: str = typer.Option("surface", "--points-from",
                                    help="surface (area-weighted samples) or vertices (the .off vertices, as the "
                                         "shape-basis authors); recorded in the manifest."),
    out: Path = OUT, points: int = POINTS, normalize: str = NORMALIZE,
    up: str = typer.Option("z", "--up", help="Up axis of the files: y or z."),
    seed: int = SEED, splits: str = SPLITS, workers: int = WORKERS, strict: bool = STRICT, force: bool = FORCE,
    quiet: bool = QUIET, as_json: bool = JSON,
) -> None:
    """ModelNet10/40 .off meshes, labelled by class folder (z-up; official train/test)."""
    from kptool.data.sources import ModelNetSource

    source = ModelNetSource(str(root), category, points_from)
    _run(source, out, points, normalize, up, seed, splits, workers, strict, force, quiet, as_json)


@app.command("folder")
def folder(
    root: Path = typer.Option(..., "--root", help="The folder (searched recursively)."),
    category: Optional[str] = typer.Option(None, "--category", "-c", help="Category name, if one."),
    correspondences: Optional[Path] = typer.Option(
        None, "--correspondences", help="Your correspondence sets (kptool-correspondences JSON, docs/formats.md)."),
    out: Path = OUT, points: int = POINTS, normalize: str = NORMALIZE,
    up: str = typer.Option("y", "--up", help="Up axis of the files: y or z."),
    seed: int = SEED, splits: str = SPLITS, workers: int = WORKERS, strict: bool = STRICT, force: bool = FORCE,
    quiet: bool = QUIET, as_json: bool = JSON,
) -> None:
    """Any folder of meshes and clouds (.ply .obj .off .stl .glb .gltf .pcd .xyz .txt .pts .npy .npz)."""
    from kptool.data.sources import FolderSource

    source = FolderSource(str(root), category, None if correspondences is None else str(correspondences))
    _run(source, out, points, normalize, up, seed, splits, workers, strict, force, quiet, as_json)


@app.command("combine")
def combine(
    inputs: list[Path] = typer.Argument(..., metavar="DATA", help="Two or more prepared dataset folders."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: a new prepared dataset."),
    prefix: bool = typer.Option(False, "--prefix", help="Put each input's folder name before its shape ids "
                                "(when the inputs share ids, e.g. two built-in sets)."),
    force: bool = typer.Option(False, "--force", help="Replace a combined set in --out made from other inputs."),
    quiet: bool = QUIET, as_json: bool = JSON,
) -> None:
    """Combine prepared datasets into one (same frame and points; ids, splits and class labels kept).

    Shape files are hard-linked (else copied); e.g. pre-training on the built-in categories
    and the furniture set: kptool prepare combine data/builtin data/furniture --out data/pretrain"""
    from kptool.data.combine import combine_datasets

    summary = combine_datasets(inputs, out, prefix=prefix, force=force)
    if as_json:
        print_json(summary.to_json())
        return
    c = summary.counts
    parts = ", ".join(f"{Path(i['root']).name} {i['shapes']}" for i in summary.inputs)
    info(f"combined {len(summary.inputs)} datasets ({parts} shapes) into {out}: train {c['train']}, "
         f"val {c['val']}, test {c['test']}; {len(summary.classes)} classes", quiet)


@app.command("geodesics")
def geodesics(
    data: Path = typer.Argument(..., help="A prepared dataset folder."),
    method: str = typer.Option("heat", "--method", help="heat (default), exact (meshes), graph (20-NN Dijkstra), "
                                                      "or auto (heat on meshes, graph on bare clouds)."),
    all_pairs: bool = typer.Option(False, "--all-pairs", help="Also all pairs among the sampled points (N x N)."),
    workers: int = WORKERS, strict: bool = STRICT, force: bool = typer.Option(False, "--force",
                                                                             help="Recompute existing tables."),
    quiet: bool = QUIET, as_json: bool = JSON,
) -> None:
    """Add geodesic distances (keypoints -> all points; optionally all pairs) to a prepared dataset.

    With correspondence sets (keypoint ids), also the table of mean geodesic distances
    between sets (train split) that the embedding loss uses."""
    from kptool.data.geodesics import add_geodesics

    workers = worker_count(workers)
    summary = run_with_progress(
        f"geodesics ({method})", quiet or as_json,
        lambda report: add_geodesics(data, method=method, all_pairs=all_pairs, workers=workers, progress=report,
                                     force=force, strict=strict),
        f"finished tables are kept in {data}; run the same command again to resume")
    if as_json:
        print_json(summary)
        exit_if_failed(summary["failed"])
        return
    info(f"geodesics ({method}) in {data}: {summary['computed']} shapes computed, {summary['skipped']} already "
         f"there; tables: {', '.join(summary['tables']) or 'none'}", quiet)
    sets = summary.get("set_distances")
    if sets:
        info(f"set distances: {len(sets['ids'])} correspondence sets from {sets['shapes']} {sets['computed_on']} "
             f"shapes ({sets['never_together']} pairs of sets never on one shape, {sets['unreachable_pairs']} "
             f"unreachable point pairs left out)", quiet)
    if summary["unreachable"]:
        info(f"[yellow]{len(summary['unreachable'])} shapes have unreachable points (inf)[/]: "
             f"{', '.join(summary['unreachable'][:5])}", quiet)
    report_failures(summary["failed"], "shapes", None, quiet)


@app.command("voxels")
def voxels(
    data: Path = typer.Argument(..., help="A prepared dataset folder (shapes with meshes)."),
    resolution: int = typer.Option(32, "--resolution", help="Voxels per side of the canonical cube (32 or 64)."),
    workers: int = WORKERS, strict: bool = STRICT,
    force: bool = typer.Option(False, "--force", help="Recompute existing grids."),
    quiet: bool = QUIET, as_json: bool = JSON,
) -> None:
    """Add occupancy voxel grids in the canonical frame (single-view reconstruction targets) to a prepared dataset."""
    from kptool.reconstruct.voxels import add_voxels

    summary = run_with_progress(
        f"voxels ({resolution}^3)", quiet or as_json,
        lambda report: add_voxels(data, resolution, worker_count(workers), report, force, strict),
        f"finished grids are kept in {data}; run the same command again to resume")
    if as_json:
        print_json(summary)
        exit_if_failed(summary["failed"])
        return
    occupancy = summary["mean_occupancy"]
    info(f"voxels in {data}/extras/{summary['table']}: {summary['computed']} shapes computed, {summary['skipped']} "
         f"already there" + (f"; mean occupancy {occupancy:.3f}" if occupancy is not None else ""), quiet)
    report_failures(summary["failed"], "shapes", None, quiet)
