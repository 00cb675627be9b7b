"""`kptool features DATA --checkpoint RUN --out feats.npz`: one global feature per shape, for `kptool eval svm`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kptool.cli.common import info
from kptool.errors import KptoolError


def features(
    data: Path = typer.Argument(..., help="Prepared dataset folder (all its splits are encoded)."),
    out: Path = typer.Option(..., "--out", "-o", help="Features file to write (.npz)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Run folder or .pt checkpoint."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p",
                                         help="Instead of --checkpoint: this preset's model with random weights."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights (--preset)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Shapes per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    mixtures: Optional[Path] = typer.Option(None, "--mixtures", help="Also draw the Gaussian mixtures of 4 test "
                                            "shapes into this PNG (ParAE runs: paper Fig. 3)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages."),
) -> None:
    """Encode every shape of a prepared dataset into its global feature (after the backbone's max-pool)."""
    from kptool.io.atomic import check_writable
    from kptool.probe import write_features
    from kptool.probe.extract import extract_features

    check_writable(out, force)
    if mixtures is not None:
        if checkpoint is None:
            raise KptoolError("--mixtures needs --checkpoint (a ParAE run)")
        check_writable(mixtures, force)
    fs = extract_features(data, checkpoint, preset, seed, device, batch_size)
    write_features(out, fs, overwrite=force)
    if mixtures is not None:
        from kptool.probe.mixture import draw_mixtures

        info(f"wrote {draw_mixtures(checkpoint, data, mixtures, device=device)}", quiet)
    counts = {s: fs.splits.count(s) for s in ("train", "val", "test")}
    info(f"wrote {out}: {fs.features.shape[0]} shapes x {fs.features.shape[1]} features, {len(fs.classes)} "
         f"classes (train {counts['train']}, val {counts['val']}, test {counts['test']})", quiet)
