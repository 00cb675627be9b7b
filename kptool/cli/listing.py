"""`kptool list KIND`: what kptool has, with a one-line description each."""

from __future__ import annotations

import typer

from kptool.cli.common import print_json, print_table


def list_entries(
    kind: str = typer.Argument(..., help="models, backbones, losses, metrics, presets, methods or sources."),
    json_: bool = typer.Option(False, "--json", help="Print [{name, description}, ...] as JSON."),
) -> None:
    """List the registered models, backbones, losses, metrics, detection methods, prepare sources or presets."""
    from kptool.catalogue import catalogue

    entries = catalogue(kind)
    if json_:
        print_json([{"name": n, "description": d} for n, d in entries])
    else:
        print_table(f"{kind} ({len(entries)})", [("name", "left"), ("description", "left")], entries)
