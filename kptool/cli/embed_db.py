"""`kptool embed-db RUN --data D --out FILE.pt`: rebuild an embedding model's database from another annotated set."""

from __future__ import annotations

from pathlib import Path

import typer

from kptool.cli.common import info, print_json


def embed_db(
    checkpoint: Path = typer.Argument(..., help="Run folder or .pt checkpoint of an embedding model (presets embed-*)."),
    data: Path = typer.Option(..., "--data", "-d", help="Prepared dataset with correspondence sets (keypoint ids)."),
    out: Path = typer.Option(..., "--out", "-o", help="The new checkpoint file (.pt)."),
    split: str = typer.Option("train", "--split", help="Split whose annotated shapes make the database: train, val, "
                                                        "test or all."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Rebuild the database of set means that turns embeddings into ordered keypoints, from another annotated set."""
    from kptool.detect.database import rebuild_database

    summary = rebuild_database(checkpoint, data, out, split=split, device=device, force=force)
    if as_json:
        print_json(summary)
        return
    info(f"embedding database of {summary['sets']} sets from {summary['shapes']} shapes of {data} "
         f"(split {summary['split']}) -> {out}; detect with: kptool detect SHAPE --checkpoint {out}", quiet)
