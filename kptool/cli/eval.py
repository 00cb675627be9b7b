"""`kptool eval METRIC [PREDICTIONS] --data DIR`: score predictions on a prepared dataset.

METRIC is a sub-command, one per registered metric (``kptool list metrics``), or
``all``. PREDICTIONS is a predictions file (docs/formats.md); ``repeatability``
re-detects instead, with ``--method`` (a baseline) or ``--checkpoint``, and then
PREDICTIONS only selects the shapes. The work is :func:`kptool.evaluate`; this module
parses, calls it and prints the report as tables (or JSON with ``--json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from kptool.cli.common import info, print_json, print_table
from kptool.errors import KptoolError

app = typer.Typer(help="Evaluate predictions: das, miou, part-corr, repeatability, registration, the keypoint "
                       "properties (coverage, ...), part-miou, or all of them.",
                  no_args_is_help=True)

PREDICTIONS = typer.Argument(None, help="Predictions file (kptool detect writes one).", show_default=False)
DATA = typer.Option(..., "--data", "-d", help="Prepared dataset folder the predictions refer to.")
SPLIT = typer.Option(None, "--split", help="Evaluate only the shapes of this split: train, val, test or all "
                                           "(default: the predictions file's split, else all).")
OUT = typer.Option(None, "--out", "-o", show_default=False,
                   help="Folder for PNG/CSV outputs [default: PREDICTIONS name + '.eval', or "
                        "'repeatability-METHOD.eval']; only files this command writes are refused.")
JSON = typer.Option(False, "--json", help="Print the results as JSON only.")
QUIET = typer.Option(False, "--quiet", "-q", help="No messages on stderr.")
FORCE = typer.Option(False, "--force", help="Overwrite the output files of an earlier run.")
THRESHOLD = typer.Option(0.1, "--threshold", help="mIoU: distance at which the value is quoted; "
                                                  "repeatability: largest distance a keypoint may move.")
FRAME = typer.Option(None, "--frame", show_default=False,
                     help="Frame distances are measured in: prepared or original [default: original for "
                          "miou (the papers' numbers), prepared for repeatability].")
GRID = typer.Option(8, "--grid", help="Shapes in the keypoint picture (0 = none).")
METHOD = typer.Option(None, "--method", "-m", show_default=False,
                      help="Repeatability: re-detect with a baseline: iss, harris3d, fps or random.")
CHECKPOINT = typer.Option(None, "--checkpoint", show_default=False,
                          help="Repeatability: re-detect with a trained model (run folder or .pt file).")
KEYPOINTS = typer.Option(None, "--keypoints", "--num-keypoints", "-k", show_default=False,
                         help="Repeatability with --method: keypoints per shape [default: the method's].")
PERTURBATION = typer.Option(None, "--perturbation", show_default=False,
                            help="Repeatability: noise, rotation-up, rotation-so3, decimation, translation or "
                                 "scale; repeat the option for several [default: all].")
LEVELS = typer.Option(None, "--levels", show_default=False,
                      help="Repeatability: comma-separated levels (noise sigma, degrees, or share dropped) "
                           "[default: per perturbation, see docs/metrics.md].")
SEED = typer.Option(0, "--seed", help="Seed of the perturbations and the random baseline.")
DEVICE = typer.Option("auto", "--device", help="Device for --checkpoint: auto, cpu, cuda, cuda:N.")
CLASSIC = ("das", "miou", "part-corr", "repeatability", "mge", "registration")


@app.command("das")
def das(predictions: Optional[Path] = PREDICTIONS, data: Path = DATA, split: Optional[str] = SPLIT,
        out: Optional[Path] = OUT, as_json: bool = JSON, quiet: bool = QUIET, force: bool = FORCE,
        grid: int = GRID) -> None:
    """Dual alignment score: forward, backward and their mean (Skeleton Merger's definition)."""
    _run(["das"], predictions, data, split, out, as_json, quiet, force, grid=grid)


@app.command("miou")
def miou(predictions: Optional[Path] = PREDICTIONS, data: Path = DATA, split: Optional[str] = SPLIT,
         out: Optional[Path] = OUT, as_json: bool = JSON, quiet: bool = QUIET, force: bool = FORCE,
         threshold: float = THRESHOLD, frame: Optional[str] = FRAME, grid: int = GRID) -> None:
    """Keypoint mIoU curve: Euclidean (Skeleton Merger) and, with geodesic tables, geodesic (KeypointNet)."""
    _run(["miou"], predictions, data, split, out, as_json, quiet, force, grid=grid, threshold=threshold, frame=frame)


@app.command("part-corr")
def part_corr(predictions: Optional[Path] = PREDICTIONS, data: Path = DATA, split: Optional[str] = SPLIT,
              out: Optional[Path] = OUT, as_json: bool = JSON, quiet: bool = QUIET, force: bool = FORCE,
              grid: int = GRID) -> None:
    """Part correspondence ratio on part-labelled shapes (ShapeNet-Part style)."""
    _run(["part-corr"], predictions, data, split, out, as_json, quiet, force, grid=grid)


@app.command("repeatability")
def repeatability(predictions: Optional[Path] = PREDICTIONS, data: Path = DATA, split: Optional[str] = SPLIT,
                  out: Optional[Path] = OUT, as_json: bool = JSON, quiet: bool = QUIET, force: bool = FORCE,
                  threshold: float = THRESHOLD, frame: Optional[str] = FRAME, method: Optional[str] = METHOD,
                  checkpoint: Optional[Path] = CHECKPOINT, keypoints: Optional[int] = KEYPOINTS,
                  perturbation: Optional[list[str]] = PERTURBATION, levels: Optional[str] = LEVELS,
                  seed: int = SEED, device: str = DEVICE) -> None:
    """Repeatability under noise, rotation and decimation: detect again and count keypoints that stay."""
    _run(["repeatability"], predictions, data, split, out, as_json, quiet, force, grid=0, threshold=threshold,
         frame=frame, perturbations=perturbation, levels=_levels(levels), seed=seed,
         detector=_detector(method, checkpoint, keypoints, seed, device))


@app.command("mge")
def mge(predictions: Optional[Path] = PREDICTIONS, data: Path = DATA, split: Optional[str] = SPLIT,
        out: Optional[Path] = OUT, as_json: bool = JSON, quiet: bool = QUIET, force: bool = FORCE,
        frame: str = typer.Option("prepared", "--frame", help="Frame distances are measured in: prepared or "
                                                              "original."),
        unreachable: str = typer.Option("max", "--unreachable", help="A match on another connected part: max "
                                        "(the largest distance from the annotated point) or skip.")) -> None:
    """Mean geodesic error of embeddings over correspondence sets (paper 002), and the Euclidean one."""
    _run(["mge"], predictions, data, split, out, as_json, quiet, force, grid=0, frame=frame, unreachable=unreachable)


@app.command("registration")
def registration(predictions: Optional[Path] = PREDICTIONS, data: Path = DATA, split: Optional[str] = SPLIT,
                 out: Optional[Path] = OUT, as_json: bool = JSON, quiet: bool = QUIET, force: bool = FORCE,
                 checkpoint: Path = typer.Option(..., "--checkpoint", help="Run folder or .pt file of a model "
                                                 "with ordered keypoints."),
                 angles: Optional[str] = typer.Option(None, "--angles", show_default=False, help="Comma-separated "
                                                      "misalignment angles in degrees [default: 0,15,...,90]."),
                 templates: int = typer.Option(3, "--templates", help="Aligned training shapes to register to."),
                 seed: int = typer.Option(0, "--seed", help="Picks the templates."), device: str = DEVICE) -> None:
    """Rotation error of keypoint registration to aligned training templates vs misalignment (paper 001, Fig. 5)."""
    _run(["registration"], predictions, data, split or ("test" if predictions is None else None), out, as_json,
         quiet, force, grid=0, angles=_levels(angles, "--angles"), templates=templates, seed=seed,
         detector=_detector(None, checkpoint, None, seed, device))


@app.command("all")
def all_metrics(predictions: Optional[Path] = PREDICTIONS, data: Path = DATA, split: Optional[str] = SPLIT,
                out: Optional[Path] = OUT, as_json: bool = JSON, quiet: bool = QUIET, force: bool = FORCE,
                threshold: float = THRESHOLD, frame: Optional[str] = FRAME, grid: int = GRID,
                method: Optional[str] = METHOD, checkpoint: Optional[Path] = CHECKPOINT,
                keypoints: Optional[int] = KEYPOINTS, perturbation: Optional[list[str]] = PERTURBATION,
                levels: Optional[str] = LEVELS, seed: int = SEED, device: str = DEVICE) -> None:
    """Every metric the predictions and the dataset support, in one table (repeatability only with
    --method/--checkpoint)."""
    from kptool.metrics import METRICS

    _run(list(METRICS), predictions, data, split, out, as_json, quiet, force, grid=grid, threshold=threshold,
         frame=frame, perturbations=perturbation, levels=_levels(levels), seed=seed,
         detector=_detector(method, checkpoint, keypoints, seed, device), skip_unsupported=True)


def _generic(name: str):
    def command(predictions: Optional[Path] = PREDICTIONS, data: Path = DATA, split: Optional[str] = SPLIT,
                out: Optional[Path] = OUT, as_json: bool = JSON, quiet: bool = QUIET, force: bool = FORCE,
                grid: int = GRID) -> None:
        _run([name], predictions, data, split, out, as_json, quiet, force, grid=grid)
    return command


def _add_registered_metrics() -> None:
    """One sub-command for each registered metric without a hand-written one above."""
    from kptool.metrics import METRICS

    for name in METRICS:
        if name not in CLASSIC:
            app.command(name, help=METRICS.describe(name))(_generic(name))


_add_registered_metrics()


def _levels(text: Optional[str], option: str = "--levels") -> Optional[list[float]]:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise KptoolError(f"{option} must be comma-separated numbers, got {text!r}") from None


def _detector(method: Optional[str], checkpoint: Optional[Path], keypoints: Optional[int], seed: int, device: str):
    if method is None and checkpoint is None:
        return None
    if method and checkpoint:
        raise KptoolError("give either --method or --checkpoint, not both")
    from kptool.detect import get_detector

    return get_detector(method or "checkpoint", checkpoint, None, keypoints, device, seed)


def _run(metrics: list[str], predictions: Optional[Path], data: Path, split: Optional[str], out: Optional[Path],
         as_json: bool, quiet: bool, force: bool, grid: int, detector: Any = None, skip_unsupported: bool = False,
         **options: Any) -> None:
    from kptool.evaluation import evaluate

    redetecting = metrics in (["repeatability"], ["registration"])
    if predictions is None and not redetecting:
        need = "--method or --checkpoint (repeatability) or " if "repeatability" in metrics else ""
        raise KptoolError(f"kptool eval {metrics[0] if len(metrics) == 1 else 'all'}: give {need}a PREDICTIONS file")
    if predictions is None and detector is None:
        raise KptoolError(f"{metrics[0]} needs --method or --checkpoint to detect again")
    if out is None:
        out = (predictions.with_name(predictions.stem + ".eval") if predictions is not None
               else Path(f"{metrics[0]}-{getattr(detector, 'name', 'detector')}.eval"))
    report = evaluate(data, predictions, metrics, split=split, detector=detector, out=out, force=force,
                      skip_unsupported=skip_unsupported, grid=grid,
                      log=lambda m: info(m, quiet or as_json), **options)
    if as_json:
        print_json(report.to_dict())
        return
    title = (f"{report.method or 'predictions'} on {report.dataset} "
             f"({report.num_shapes} shapes, split {report.split})")
    print_table(title, [("metric", "left"), ("value (%)", "right"), ("notes", "left")],
                [(label, "-" if value is None else f"{100 * value:.2f}", notes)
                 for label, value, notes in report.rows()])
    for t in report.tables():
        print_table(t.title, t.columns, t.rows)
    info(f"wrote {len(report.files)} files to {out}", quiet)
