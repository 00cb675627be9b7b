"""`kptool train` and `kptool export-weights`: thin wrappers over :mod:`kptool.train`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kptool.cli.common import console, info, print_json, progress_bar
from kptool.errors import KptoolError

# CLI flags that are shorthands for config keys.
FLAG_KEYS = {"epochs": "train.epochs", "batch_size": "train.batch_size", "lr": "train.lr",
             "keypoints": "model.num_keypoints", "seed": "train.seed", "init": "train.init"}


def train(
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Preset name (e.g. skeleton-mutual) or YAML "
                                         "file. Not needed with --resume."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Prepared dataset folder (kptool prepare). "
                                        "With --resume defaults to the run's."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder for config, log and checkpoints."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Sets train.epochs."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Sets train.batch_size (per process)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Sets train.lr."),
    keypoints: Optional[int] = typer.Option(None, "--keypoints", "-k", help="Sets model.num_keypoints."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Sets train.seed."),
    init: Optional[Path] = typer.Option(None, "--init", help="Sets train.init: start the backbone from this "
                                        "pre-training run or checkpoint."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override any config key: section.key=value "
                                             "(value read as YAML); repeatable."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out where it stopped."),
    force: bool = typer.Option(False, "--force", help="Start over in a non-empty run folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or messages."),
    json_: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout at the end."),
) -> None:
    """Train a keypoint detector from a preset on a prepared dataset.

    Multi-GPU / multi-process: torchrun --nproc_per_node N -m kptool.cli.main train ...
    """
    from kptool.train.config import resolve_config   # no torch yet: config errors come fast

    overrides = list(set_ or [])
    flags = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "keypoints": keypoints, "seed": seed,
             "init": init}
    overrides += [f"{FLAG_KEYS[k]}={v}" for k, v in flags.items() if v is not None]
    if resume:
        if force:
            raise KptoolError("--resume and --force contradict each other")
        from kptool.train.checkpoint import load_checkpoint

        # the run's own resolved config is the base; only a few keys may change (RESUMABLE_KEYS)
        base = load_checkpoint(out / "checkpoints" / "last.pt")["config"]
        if preset is not None and preset != base.get("name"):
            raise KptoolError(f"{out} was trained with preset {base.get('name')!r}, not {preset!r} "
                              f"(leave --preset out when resuming)")
        config = resolve_config(base, overrides)
    else:
        if preset is None:
            raise KptoolError("--preset is required for a new run (e.g. --preset skeleton-mutual)")
        if data is None:
            raise KptoolError("--data is required for a new run (a folder written by `kptool prepare`)")
        config = resolve_config(preset, overrides)
    from kptool.train import TrainingInterrupted, train as run_training
    from kptool.train.distributed import dist_info

    main_process = dist_info().is_main
    quiet = quiet or not main_process
    try:
        with progress_bar(quiet=quiet) as bar:
            summary = run_training(config, data, out, device=device, resume=resume, force=force,
                                   progress=bar, log=lambda m: info(m, quiet))
    except TrainingInterrupted as e:
        if main_process:
            console.print(str(e), highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    if json_ and main_process:
        print_json(summary)
    elif main_process:
        best = summary["best"]
        best_text = f"; best {best['metric']} {best['value']:.4g} at epoch {best['epoch']}" if best else ""
        info(f"done: {summary['epochs']} epochs{best_text}; checkpoint {summary['checkpoint']}", quiet)


def export_weights(
    run: Path = typer.Argument(..., help="Run folder (uses its best checkpoint) or a checkpoint .pt file."),
    out: Path = typer.Option(..., "--out", "-o", help="Weights file to write (.pt)."),
    category: Optional[str] = typer.Option(None, "--category", help="Category the weights are for (recorded)."),
    half: bool = typer.Option(False, "--half", help="Store floating-point weights as float16 (half the size)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Write slim detection weights (no optimiser state) from a training run."""
    from kptool.train import export_weights as export

    path = export(run, out, category=category, overwrite=force, half=half)
    info(f"wrote {path}", quiet)
