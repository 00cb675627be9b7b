"""Prepared datasets: the folder ``kptool prepare`` writes and everything else reads.

Layout (documented for users in docs/formats.md)::

    DIR/
      manifest.json          # source, options, frame, per-shape records, counts, versions
      failures.json          # shapes that could not be prepared, with the reason
      shapes/<id>.npz        # one file per shape (see SHAPE_KEYS)
      extras/<name>/<id>.npy # optional per-shape tables added later (geodesics, ...)

A shape file holds ``points`` ``(N, 3)`` float32 and ``transform`` ``(4, 4)``
(original frame -> prepared frame) plus any of the optional keys; everything is
in the prepared frame. :class:`PreparedDataset` is the one Python API over it.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from kptool.data.batches import TorchShapes, collate_shapes, read_npz
from kptool.core.shape import Shape
from kptool.core.transform import Transform
from kptool.errors import InputError
from kptool.failures import FAILURES_FILE
from kptool.io.atomic import atomic_path, safe_join
from kptool.io.safe_load import parse_json

FORMAT = "kptool-prepared"
VERSION = 1
MANIFEST = "manifest.json"
FAILURES = FAILURES_FILE
SPLITS = ("train", "val", "test")

# Optional Shape fields saved under the same name in a shape file.
SHAPE_KEYS = ("normals", "colors", "point_labels", "vertices", "faces", "face_labels", "keypoints",
              "keypoint_ids", "keypoint_point_index", "symmetry_plane", "symmetric_pairs")


def shape_file(shape_id: str) -> str:
    """The path of a shape file relative to the dataset root."""
    return f"shapes/{shape_id}.npz"


def save_shape(root: str | os.PathLike, shape: Shape, transform: Transform) -> Path:
    """Write one prepared shape atomically; returns its path."""
    path = safe_join(root, shape_file(shape.id))
    arrays: dict[str, np.ndarray] = {
        "points": np.asarray(shape.points, dtype=np.float32),
        "transform": np.asarray(transform.matrix, dtype=np.float64),
    }
    for key in SHAPE_KEYS:
        value = getattr(shape, key)
        if value is not None:
            arrays[key] = np.asarray(value)
    if shape.category:
        arrays["category"] = np.array(str(shape.category))  # a 0-d unicode array: no pickle needed
    meta = record_meta(shape)
    if meta:
        arrays["meta"] = np.array(json.dumps(meta))
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
    return path


def record_meta(shape: Shape) -> dict[str, Any]:
    """The plain facts of ``shape.meta`` that its manifest record (and its shape file) keep."""
    return {k: v for k, v in shape.meta.items() if isinstance(v, (str, int, float, bool)) and k != "transform"}


def load_prepared_shape(path: str | os.PathLike, shape_id: str | None = None) -> tuple[Shape, Transform]:
    """Read one prepared shape file (``shapes/<id>.npz``): the shape and its original-to-prepared transform.

    (:func:`kptool.io.load_shape` reads mesh and point-cloud files.)
    """
    p = Path(path)
    data = read_npz(p)
    if "points" not in data or "transform" not in data:
        raise InputError(p, "not a prepared shape file (needs 'points' and 'transform')")
    _check_arrays(p, data)
    kwargs = {k: data[k] for k in SHAPE_KEYS if k in data}
    category = str(data["category"]) if "category" in data else None
    shape = Shape(points=data["points"], id=shape_id or p.stem, category=category, **kwargs)
    if "meta" in data:
        meta = parse_json(str(data["meta"]), p, "shape file (its 'meta')")
        if not isinstance(meta, dict):
            raise InputError(p, "'meta' must hold a JSON object")
        shape.meta = meta
    return shape, Transform.from_list(data["transform"])


def _check_arrays(p: Path, data: dict[str, np.ndarray]) -> None:
    points, transform = data["points"], data["transform"]
    if points.dtype.kind not in "fiu" or points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise InputError(p, f"'points' must be an (N, 3) array of numbers, got {points.dtype} {points.shape}")
    if transform.dtype.kind not in "fiu" or transform.shape != (4, 4):
        raise InputError(p, f"'transform' must be a 4 x 4 matrix, got {transform.dtype} {transform.shape}")
    for key in ("points", "transform", "keypoints"):
        if key in data and data[key].dtype.kind in "fiu" and not np.isfinite(data[key]).all():
            raise InputError(p, f"'{key}' contains NaN or inf")


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise InputError(root, "no such prepared dataset folder")
    if not path.is_file():
        raise InputError(root, "not a prepared dataset (no manifest.json; run `kptool prepare` first, "
                               "or it was interrupted: run the same command again to finish it)")
    manifest = parse_json(path.read_bytes(), path, "prepared-dataset manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(path, "not a kptool prepared-dataset manifest (no \"format\": \"kptool-prepared\")")
    if manifest.get("version") != VERSION:
        raise InputError(path, f"unsupported prepared-dataset version {manifest.get('version')!r}")
    _check_records(path, manifest.get("shapes"))
    return manifest


def _check_records(path: Path, records: Any) -> None:
    """Every shape record has a unique string id, a known split and a shape file inside the folder."""
    if not isinstance(records, list):
        raise InputError(path, f'"shapes" must be a list of shape records, got {type(records).__name__}')
    seen: set[str] = set()
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InputError(path, f"shape record {i} is not an object")
        for key in ("id", "split", "file"):
            if not isinstance(rec.get(key), str) or not rec[key]:
                raise InputError(path, f'shape record {i} lacks "{key}" (a non-empty string)')
        if rec["split"] not in SPLITS:
            raise InputError(path, f"shape {rec['id']!r}: unknown split {rec['split']!r} "
                                   f"(expected one of {', '.join(SPLITS)})")
        if rec["id"] in seen:
            raise InputError(path, f"shape id {rec['id']!r} appears twice")
        seen.add(rec["id"])
        file = Path(rec["file"])
        if file.is_absolute() or ".." in file.parts:
            raise InputError(path, f"shape {rec['id']!r}: file {rec['file']!r} is outside the dataset folder")
        n = rec.get("num_points")
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise InputError(path, f"shape {rec['id']!r}: num_points must be a positive integer, got {n!r}")


def write_manifest(root: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    path = Path(root) / MANIFEST
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return path


def extra_path(root: str | os.PathLike, name: str, shape_id: str) -> Path:
    return safe_join(root, "extras", name, f"{shape_id}.npy")


def save_extra(root: str | os.PathLike, name: str, shape_id: str, array: np.ndarray) -> Path:
    path = extra_path(root, name, shape_id)
    with atomic_path(path) as tmp:
        np.save(tmp, np.asarray(array))
    return path


class PreparedDataset:
    """A prepared dataset, optionally restricted to one split.

    ``ds[i]`` is a :class:`~kptool.data.Shape` (numpy arrays, prepared frame) with
    ``meta["transform"]`` set to its :class:`~kptool.data.Transform`. Use
    :meth:`torch_dataset` for a ``torch.utils.data.Dataset`` of tensors.

    Args:
        root: the folder ``kptool prepare`` wrote.
        split: ``"train"``, ``"val"``, ``"test"``, ``"all"`` or ``None`` (= all).
        extras: names of extra tables (``extras/<name>/``) to load into ``shape.extras``.
    """

    def __init__(self, root: str | os.PathLike, split: str | None = None, extras: tuple[str, ...] = ()):
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        if split not in (None, "all", *SPLITS):
            raise InputError(None, f"unknown split {split!r}: expected one of {', '.join(SPLITS)} or all")
        self.split = None if split == "all" else split
        self.records = [r for r in self.manifest["shapes"] if self.split is None or r["split"] == self.split]
        self._position = {r["id"]: i for i, r in enumerate(self.records)}
        self.extras = tuple(extras)
        for name in self.extras:
            if name not in self.manifest.get("extras", {}):
                raise InputError(self.root, f"has no '{name}' tables (available: "
                                            f"{', '.join(self.manifest.get('extras', {})) or 'none'})")

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Shape]:
        for i in range(len(self)):
            yield self[i]

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.records]

    @property
    def category(self) -> str | None:
        return self.manifest.get("category")

    @property
    def has_keypoints(self) -> bool:
        return any(r.get("num_keypoints", 0) > 0 for r in self.records)

    @property
    def has_part_labels(self) -> bool:
        return any(r.get("has_part_labels", False) for r in self.records)

    @property
    def has_mesh(self) -> bool:
        return any(r.get("has_mesh", False) for r in self.records)

    def only(self, ids) -> "PreparedDataset":
        """This view restricted to the shapes whose ids are in ``ids`` (this view's order kept)."""
        import copy

        view = copy.copy(self)
        wanted = set(ids)
        view.records = [r for r in self.records if r["id"] in wanted]
        view._position = {r["id"]: i for i, r in enumerate(view.records)}
        return view

    def index_of(self, shape_id: str) -> int:
        """Position of a shape id in this view; ``KeyError`` when it is not in it."""
        return self._position[shape_id]

    def __getitem__(self, i: int) -> Shape:
        rec = self.records[i]
        shape, transform = load_prepared_shape(safe_join(self.root, rec["file"]), rec["id"])
        shape.category = rec.get("category") or self.category
        shape.meta = {**rec.get("meta", {}), "transform": transform, "split": rec["split"]}
        for name in self.extras:
            path = extra_path(self.root, name, rec["id"])
            if path.is_file():
                shape.extras[name] = np.load(path, allow_pickle=False)
        return shape

    @cached_property
    def class_names(self) -> list[str]:
        """Categories of the whole dataset, sorted: ``class_label`` is an index into this list."""
        names = {r.get("category") or self.category or "" for r in self.manifest["shapes"]}
        return sorted(names)

    def class_index(self, i: int) -> int:
        return self.class_names.index(self.records[i].get("category") or self.category or "")

    def read_arrays(self, i: int, keys: tuple[str, ...] | list[str]) -> dict[str, np.ndarray]:
        """Only the arrays ``keys`` of shape ``i`` (those it has), without building a :class:`Shape`."""
        return read_npz(safe_join(self.root, self.records[i]["file"]), keys)

    def extra(self, i: int, name: str) -> np.ndarray:
        """Shape ``i``'s table ``extras/<name>``, memory-mapped (read only where indexed)."""
        path = extra_path(self.root, name, self.records[i]["id"])
        if not path.is_file():
            raise InputError(path, f"shape {self.records[i]['id']!r} has no '{name}' table")
        return np.load(path, mmap_mode="r", allow_pickle=False)

    def extra_or_none(self, i: int, name: str) -> np.ndarray | None:
        """:meth:`extra`, or None when shape ``i`` has no such table."""
        path = extra_path(self.root, name, self.records[i]["id"])
        return np.load(path, mmap_mode="r", allow_pickle=False) if path.is_file() else None

    def torch_dataset(self, fields: tuple[str, ...] = ("points",)) -> TorchShapes:
        """A ``torch.utils.data.Dataset`` of dicts with these batch fields; see :mod:`kptool.data.batches`."""
        return TorchShapes(self, fields)


__all__ = ["PreparedDataset", "TorchShapes", "collate_shapes", "save_shape", "load_prepared_shape", "save_extra",
           "extra_path", "read_manifest", "write_manifest", "SPLITS", "SHAPE_KEYS"]
