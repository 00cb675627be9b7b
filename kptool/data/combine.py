"""Several prepared datasets as one: ``kptool prepare combine A B ... --out C``.

The combined folder is an ordinary prepared dataset (docs/formats.md): every shape of
every input, with its split and its class label kept, so that training, features and
the probe read it like any other. Shape files are hard-linked from the inputs (copied
where the file system cannot link), so combining costs almost no disk and the result
stays valid when an input is later deleted or re-prepared.

Rules, checked before anything is written:

- the inputs share one frame (up axis and normalisation) and one point count: a set
  that mixes frames would teach a model the difference between sources;
- shape ids stay as they are and must be unique across the inputs; ``prefix`` puts
  each input's folder name in front of its ids (``builtin-chair-000000``) instead;
- each record gets its class label written out (a single-category input's manifest
  ``category``), so classes of the same name in two inputs are one class;
- keypoints, part labels and meshes come along; extra tables (geodesics) do not:
  run ``kptool prepare geodesics`` on the combined set.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kptool.data import prepared
from kptool.data.prepare import check_output, software_versions
from kptool.errors import InputError, KptoolError, OutputError
from kptool.io.atomic import atomic_path, safe_join, write_text

STATE = ".combine.json"
FRAME_KEYS = ("up", "normalize")


@dataclass
class CombineSummary:
    out: str
    inputs: list[dict[str, Any]]
    counts: dict[str, int]
    classes: list[str]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"out": self.out, "inputs": self.inputs, "counts": self.counts, "classes": self.classes,
                "seconds": self.seconds}


def _frame(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: manifest.get("frame", {}).get(k) for k in FRAME_KEYS}


def _points(manifest: dict[str, Any]) -> set:
    return {r.get("num_points") for r in manifest["shapes"]}


def _check_inputs(roots: list[Path], manifests: list[dict[str, Any]], out: Path) -> None:
    if len(roots) < 2:
        raise KptoolError("prepare combine needs at least two prepared datasets")
    resolved = [r.resolve() for r in roots]
    for r, again in Counter(resolved).items():
        if again > 1:
            raise InputError(r, "is given twice")
    if out.resolve() in resolved:
        raise OutputError(f"{out}: is one of the inputs; write the combined set to a new folder")
    first = roots[0]
    for root, m in zip(roots[1:], manifests[1:]):
        if _frame(m) != _frame(manifests[0]):
            raise InputError(root, f"is in another frame ({_frame(m)}) than {first} ({_frame(manifests[0])}); "
                                   f"prepare both with the same --normalize and --up")
        if _points(m) != _points(manifests[0]):
            raise InputError(root, f"has {', '.join(map(str, sorted(_points(m))))} points per shape but {first} "
                                   f"has {', '.join(map(str, sorted(_points(manifests[0]))))} (prepare both "
                                   f"with the same --points)")


def _new_ids(roots: list[Path], manifests: list[dict[str, Any]], prefix: bool) -> list[list[str]]:
    """The combined set's id of every input record; refuses clashes (naming both inputs)."""
    if prefix:
        names = [r.resolve().name for r in roots]
        twice = [n for n, c in Counter(names).items() if c > 1]
        if twice:
            raise KptoolError(f"--prefix uses the input folders' names, and {twice[0]!r} names two inputs "
                              f"(rename one folder)")
    ids = [[f"{root.resolve().name}-{r['id']}" if prefix else r["id"] for r in m["shapes"]]
           for root, m in zip(roots, manifests)]
    owner: dict[str, Path] = {}
    for root, these in zip(roots, ids):
        for i in these:
            if i in owner:
                raise InputError(root, f"has the shape id {i!r}, which {owner[i]} has too "
                                       f"(--prefix puts each input's folder name before its ids)")
            owner[i] = root
    return ids


def _link(src: Path, dst: Path) -> None:
    """``dst`` becomes the file ``src`` (a hard link, else a copy), atomically."""
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:   # another file system, or links not allowed: copy
            shutil.copyfile(src, tmp)


def combine_datasets(inputs: list[str | os.PathLike], out: str | os.PathLike, prefix: bool = False,
                     force: bool = False) -> CombineSummary:
    """Write the prepared dataset ``out`` holding every shape of the prepared datasets ``inputs``.

    See the module docstring for the rules. Running it again with the same arguments
    redoes it (cheap: links); other arguments need ``force``.
    """
    start = time.perf_counter()
    roots, out = [Path(p) for p in inputs], Path(out)
    manifests = [prepared.read_manifest(r) for r in roots]
    _check_inputs(roots, manifests, out)
    ids = _new_ids(roots, manifests, prefix)
    state = {"format": prepared.FORMAT, "combine": [str(r.resolve()) for r in roots], "prefix": prefix}
    check_output(out, state, force, state_file=STATE)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / STATE, json.dumps(state, sort_keys=True))

    records, described = [], []
    for root, m, new_ids in zip(roots, manifests, ids):
        for rec, new_id in zip(m["shapes"], new_ids):
            file = prepared.shape_file(new_id)
            _link(safe_join(root, rec["file"]), safe_join(out, file))
            label = rec.get("category") or m.get("category")
            records.append({**rec, "id": new_id, "file": file, **({"category": label} if label else {}),
                            "meta": {**rec.get("meta", {}), "combined_from": str(root.resolve()),
                                     "original_id": rec["id"]}})
        described.append({"root": str(root.resolve()), "kind": m.get("source", {}).get("kind"),
                          "shapes": len(m["shapes"]), "prefix": f"{root.resolve().name}-" if prefix else ""})
    counts = {s: sum(r["split"] == s for r in records) for s in prepared.SPLITS}
    categories = {m.get("category") for m in manifests}
    manifest = {
        "format": prepared.FORMAT, "version": prepared.VERSION,
        "source": {"kind": "combined", "inputs": described},
        "category": categories.pop() if len(categories) == 1 else None,
        "options": {**manifests[0].get("options", {}), "combined": True},
        "frame": manifests[0].get("frame", {}),
        "counts": {**counts, "total": len(records), "failed": 0},
        "keypoint_ids": sorted({i for m in manifests for i in m.get("keypoint_ids", [])}),
        "shapes": records, "failures": [], "extras": {},
        "software": software_versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_text(out / prepared.FAILURES, json.dumps([]))
    prepared.write_manifest(out, manifest)
    classes = sorted({r["category"] for r in records if r.get("category")})
    return CombineSummary(str(out), described, counts, classes, round(time.perf_counter() - start, 2))
