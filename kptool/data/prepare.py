"""The ``kptool prepare`` runner: many shapes from a source into a prepared dataset.

Resumable and crash-safe by construction:

- the output folder first gets ``.kptool-prepare.json`` (source and options); a
  folder holding another dataset or anything else is refused;
- each shape file is written atomically, so a file that exists is complete; a
  re-run with the same arguments skips those shapes (and retries failures);
- ``manifest.json`` is written last: its presence means the dataset is complete.

A shape that cannot be prepared is recorded in ``failures.json`` and the run goes
on, unless ``strict``.
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kptool import __version__
from kptool.data import prepared
from kptool.data.preprocess import prepare_shape
from kptool.core.shape import Shape
from kptool.data.sources import Item, assign_splits
from kptool.core.transform import NORMALIZATIONS, UP_AXES
from kptool.errors import KptoolError, OutputError
from kptool.failures import Failures
from kptool.io.atomic import safe_join, write_text
from kptool.workers import worker_pool

STATE = ".kptool-prepare.json"
Progress = Callable[[int, int, str], None]


@dataclass
class PrepareOptions:
    """What decides the prepared data; a re-run must give the same to resume."""

    points: int = 2048
    normalize: str = "skeleton-merger"
    up: str = "y"
    seed: int = 0
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    oversample: int = 4

    def validate(self) -> None:
        if self.points < 1:
            raise KptoolError("--points must be at least 1")
        if self.normalize not in NORMALIZATIONS:
            raise KptoolError(f"unknown --normalize {self.normalize!r} (expected one of {', '.join(NORMALIZATIONS)})")
        if self.up not in UP_AXES:
            raise KptoolError(f"unknown --up {self.up!r} (expected one of {', '.join(UP_AXES)})")
        f = self.split_fractions
        if len(f) != 3 or not all(math.isfinite(x) and x >= 0 for x in f) or abs(sum(f) - 1) > 1e-6:
            raise KptoolError(f"--splits must be three non-negative fractions summing to 1, got {f}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["split_fractions"] = list(self.split_fractions)
        return d


@dataclass
class PrepareSummary:
    out: str
    total: int
    prepared: int
    skipped: int       # already done by an earlier, interrupted run
    failed: list[dict[str, str]]
    counts: dict[str, int]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _record(shape: Shape, split: str) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": shape.id, "split": split, "file": prepared.shape_file(shape.id),
        "num_points": shape.num_points, "num_keypoints": shape.num_keypoints,
        "has_mesh": shape.has_mesh, "has_part_labels": shape.point_labels is not None,
    }
    if shape.category:
        rec["category"] = str(shape.category)  # the class label (docs/formats.md)
    if shape.keypoint_ids is not None:
        rec["keypoint_ids"] = [int(i) for i in shape.keypoint_ids]
    meta = prepared.record_meta(shape)
    if meta:
        rec["meta"] = meta
    return rec


def _prepare_one(source, item: Item, split: str, options: PrepareOptions, out: str) -> dict[str, Any]:
    """Worker: load, prepare and save one shape; returns its manifest record or a failure."""
    try:
        shape = source.load(item)
        ready, transform = prepare_shape(shape, options.points, options.normalize, options.up, options.seed,
                                         options.oversample)
        prepared.save_shape(out, ready, transform)
        return {"ok": True, "record": _record(ready, split)}
    except KptoolError as e:
        return {"ok": False, "id": item.id, "source": item.path, "error": str(e)}
    except Exception as e:  # a reader we don't control broke on this file: record it, go on
        return {"ok": False, "id": item.id, "source": item.path, "error": f"{e.__class__.__name__}: {e}"}


def _existing_record(out: Path, item: Item, split: str) -> dict[str, Any] | None:
    path = safe_join(out, prepared.shape_file(item.id))
    if not path.is_file():
        return None
    try:
        shape, _ = prepared.load_prepared_shape(path, item.id)
    except KptoolError:
        return None  # unreadable leftovers are redone
    return _record(shape, split)


def check_output(out: Path, state: dict[str, Any], force: bool, state_file: str = STATE,
                 owned: tuple[str, ...] = ("shapes", "extras", prepared.MANIFEST, prepared.FAILURES)) -> bool:
    """Make ``out`` ready for a resumable job; returns True when resuming an unfinished run.

    ``state_file`` in ``out`` records the job's arguments; ``owned`` are the folders and
    files the job writes (removed, with the state file, by ``force``).
    """
    if not out.exists():
        return False
    if not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    entries = [p.name for p in out.iterdir()]
    if not entries:
        return False
    state_path = out / state_file
    if not state_path.is_file():
        raise OutputError(f"{out}: already holds files that are not a kptool dataset; use an empty or new --out folder")
    try:
        old = json.loads(state_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        old = None
    if old == state and not force:
        return True
    if not force:
        raise OutputError(f"{out}: holds a dataset made with other arguments; use a new --out folder, "
                          f"or --force to replace it")
    for name in (*owned, state_file):
        path = out / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return False


def run_jobs(job: Callable[..., dict[str, Any]], args: list[tuple], workers: int,
             handle: Callable[[dict[str, Any]], None]) -> None:
    """``handle(job(*a))`` for every ``a`` in ``args``, in worker processes when ``workers > 1``."""
    if workers <= 1 or len(args) <= 1:
        for a in args:
            handle(job(*a))
        return
    # spawn, not fork: forking a process that already runs torch/numba thread pools can hang.
    with worker_pool(workers) as pool:
        pending = set()
        try:
            # Keep a bounded number of tasks in flight so Ctrl-C stops promptly.
            for a in args:
                pending.add(pool.submit(job, *a))
                if len(pending) >= 4 * workers:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        handle(f.result())
            for f in pending:
                handle(f.result())
        except BaseException:
            for f in pending:
                f.cancel()
            raise


class Tally:
    """The results of a resumable job as they come in: records by id, failures, progress.

    ``records`` starts with what an earlier run finished; a job result is
    ``{"ok": True, "record": {...}}`` or ``{"ok": False, "id", "error"[, "source"]}``
    (``source`` defaults to the id); failures go to a :class:`~kptool.failures.Failures`,
    which raises on the first one when ``strict``.
    """

    def __init__(self, total: int, records: dict[str, dict[str, Any]], progress: Progress | None, strict: bool):
        self.total, self.records, self.progress = total, records, progress
        self.failures = Failures(strict)
        self.skipped = self.done = len(records)
        if progress:
            progress(self.done, total, f"{self.skipped} already done" if self.skipped else "")

    def __call__(self, result: dict[str, Any]) -> None:
        self.done += 1
        if result["ok"]:
            self.records[result["record"]["id"]] = result["record"]
        else:
            self.failures.add(result["id"], result.get("source", result["id"]), result["error"])
        if self.progress:
            self.progress(self.done, self.total, f"{len(self.failures)} failed" if self.failures else "")


def software_versions() -> dict[str, str]:
    import scipy
    import trimesh

    versions = {"kptool": __version__, "python": platform.python_version(), "numpy": np.__version__,
                "scipy": scipy.__version__, "trimesh": trimesh.__version__}
    try:
        import torch

        versions["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return versions


def run_prepare(source, out: str | Path, options: PrepareOptions, workers: int = 1, strict: bool = False,
                force: bool = False, progress: Progress | None = None) -> PrepareSummary:
    """Prepare every shape of ``source`` into ``out``; see the module docstring."""
    options.validate()
    out = Path(out)
    start = time.perf_counter()
    items = source.items()
    ids = [it.id for it in items]
    _check_unique_ids(items)
    splits = assign_splits(items, options.split_fractions, options.seed)
    state = {"format": prepared.FORMAT, "source": source.describe(), "options": options.to_json()}
    resuming = check_output(out, state, force)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if not resuming:
        write_text(out / STATE, json.dumps(state, sort_keys=True))
    # A finished dataset stays valid while it is re-finished; what later steps added to it
    # (records' meta, extras such as geodesic tables) is carried over.
    earlier = _earlier_manifest(out) if resuming else {}
    earlier_records = {r["id"]: r for r in earlier.get("shapes", []) if isinstance(r, dict) and "id" in r}

    records: dict[str, dict[str, Any]] = {}
    todo = []
    for it in items:
        rec = _existing_record(out, it, splits[it.id]) if resuming else None
        if rec is not None:
            old = earlier_records.get(it.id, {})
            records[it.id] = {**old, **rec, "meta": {**old.get("meta", {}), **rec.get("meta", {})}}
            if not records[it.id]["meta"]:
                del records[it.id]["meta"]
        else:
            todo.append(it)
    tally = Tally(len(items), records, progress, strict)
    skipped, failures = tally.skipped, tally.failures

    try:
        run_jobs(_prepare_one, [(source, it, splits[it.id], options, str(out)) for it in todo], workers, tally)
    except BaseException:
        if created and not records:   # nothing of value was written: leave no folder behind
            shutil.rmtree(out, ignore_errors=True)
        raise

    ordered = [records[i] for i in ids if i in records]
    counts = {s: sum(r["split"] == s for r in ordered) for s in prepared.SPLITS}
    if not ordered:   # an empty dataset is no result: say why, leave no folder of our own behind
        if created:
            shutil.rmtree(out, ignore_errors=True)
        first = failures.records[0]["error"] if failures else "-"
        raise KptoolError(f"no shape could be prepared: {first}"
                          + (f" (and {len(failures) - 1} more failures)" if len(failures) > 1 else ""))
    failures.write(out / prepared.FAILURES)
    manifest = {
        "format": prepared.FORMAT, "version": prepared.VERSION,
        "source": source.describe(), "category": source.describe().get("category"),
        "options": options.to_json(),
        "frame": {"up": "y", "source_up": options.up, "normalize": options.normalize,
                  "description": "y-up; transform in each shape file maps the original frame to this one"},
        "counts": {**counts, "total": len(ordered), "failed": len(failures)},
        "keypoint_ids": sorted({i for r in ordered for i in r.get("keypoint_ids", [])}),
        "shapes": ordered, "failures": failures.records, "extras": earlier.get("extras") or {},
        "software": software_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    manifest.update(_category_tables(source))
    prepared.write_manifest(out, manifest)
    return PrepareSummary(out=str(out), total=len(items), prepared=len(ordered) - skipped, skipped=skipped,
                          failed=failures.records, counts=counts, seconds=round(time.perf_counter() - start, 2))


def _check_unique_ids(items: list[Item]) -> None:
    seen: dict[str, Item] = {}
    clashes = []
    for it in items:
        if it.id in seen:
            clashes.append(f"{it.id!r} ({seen[it.id].path} and {it.path})")
        seen.setdefault(it.id, it)
    if clashes:
        raise KptoolError(f"the source gives the same shape id to different files: {'; '.join(clashes[:5])}"
                          + (f" and {len(clashes) - 5} more" if len(clashes) > 5 else "")
                          + " (rename them apart)")


def _earlier_manifest(out: Path) -> dict[str, Any]:
    try:
        return prepared.read_manifest(out)
    except KptoolError:
        return {}


def _category_tables(source) -> dict[str, Any]:
    """Names of keypoint ids and parts for built-in categories (for people and plots)."""
    if getattr(source, "kind", "") != "synthetic":
        return {}
    from kptool.data.synthetic import CATEGORIES

    spec = CATEGORIES[source.category]
    out: dict[str, Any] = {}
    for key in ("keypoint_names", "part_names"):
        table = getattr(spec, key, None) if not isinstance(spec, dict) else spec.get(key)
        if table:
            out[key] = {str(k): v for k, v in table.items()}
    return out
