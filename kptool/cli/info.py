"""`kptool info DIR`: summarise a prepared dataset."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from kptool.cli.common import print_json, stdout


def info(
    data: Path = typer.Argument(..., help="A prepared dataset folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Summarise a prepared dataset: counts per split, keypoints per shape, frame, failures."""
    from kptool.data.summary import summarize

    s = summarize(data)
    if as_json:
        print_json(s)
        return
    t = Table(title=f"{data}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    src = s["source"]
    if src.get("kind") == "combined":   # kptool prepare combine
        t.add_row("source", "combined: " + " + ".join(f"{Path(i['root']).name} ({i['kind']}, {i['shapes']})"
                                                      for i in src.get("inputs", [])))
    else:
        t.add_row("source", ", ".join(f"{k}={v}" for k, v in src.items() if k != "root")
                  + (f"\n{src['root']}" if "root" in src else ""))
    c = s["counts"]
    t.add_row("shapes", f"{c['total']} (train {c['train']}, val {c['val']}, test {c['test']})")
    if s["classes"]:
        t.add_row("classes", f"{len(s['classes'])}: " + ", ".join(f"{k} {v}" for k, v in s["classes"].items()))
    t.add_row("points per shape", ", ".join(map(str, s["points_per_shape"])))
    k = s["keypoints_per_shape"]
    if k and k["max"]:
        t.add_row("keypoints per shape", f"min {k['min']}, mean {k['mean']}, max {k['max']}; "
                                         f"{len(s['semantic_ids'])} semantic ids")
    else:
        t.add_row("keypoints per shape", "none annotated")
    t.add_row("meshes / part labels", f"{s['with_mesh']} / {s['with_part_labels']}")
    f = s["frame"]
    t.add_row("frame", f"y-up (source up: {f.get('source_up')}), normalisation {f.get('normalize')}")
    t.add_row("extras", ", ".join(s["extras"]) or "none")
    t.add_row("failures", str(len(s["failures"])) + "".join(f"\n  {x['error']}" for x in s["failures"][:5]))
    t.add_row("created", f"{s['created']} with kptool {s['software'].get('kptool')}")
    stdout.print(t)
