"""Reader for a user's own correspondence annotations (``kptool-correspondences`` JSON).

A correspondence set is a group of points on different shapes that mean the same
thing. Several annotators may each define their own sets; every (annotator, set)
becomes one set id, numbered in file order from 0 (the format is documented in
docs/formats.md)::

    {"format": "kptool-correspondences", "version": 1,
     "annotators": [
       {"name": "alice",
        "sets": [{"name": "spout tip",
                  "points": [{"shape": "mugs/a.ply", "index": 812},
                             {"shape": "mugs/b", "xyz": [0.1, 0.2, 0.0]}]}]}]}

``shape`` names a file of the folder (path relative to the folder, with or without its
suffix, or the shape id ``kptool prepare folder`` gives it). A point is either ``index``
(a point of a cloud file, a vertex of a mesh file) or ``xyz`` (the file's frame; on a
cloud it is snapped to the nearest point). One annotator marks a set at most once per shape.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kptool.errors import InputError
from kptool.io.safe_load import parse_json
from kptool.io.shapes import existing_file, read_bytes

if TYPE_CHECKING:   # the shape record; io does not import kptool.data at run time
    from kptool.data.shape import Shape

FORMAT = "kptool-correspondences"
VERSION = 1


@dataclass
class CorrespondenceFile:
    """The sets of one correspondence file.

    Attributes:
        sets: ``[{"id", "annotator", "name"}]`` in id order.
        points: ``{shape key: [(set id, index or None, xyz or None)]}``.
        source: the file, for error messages.
    """

    sets: list[dict[str, Any]]
    points: dict[str, list[tuple[int, int | None, tuple[float, float, float] | None]]] = field(default_factory=dict)
    source: str = ""

    def shape_keys(self) -> list[str]:
        return list(self.points)

    def apply(self, shape: Shape, key: str) -> Shape:
        """``shape`` (as read from its file) with the points of ``key`` as keypoints.

        Sets ``keypoints`` (float32, file frame) and ``keypoint_ids`` (set ids); on a cloud
        also ``keypoint_point_index`` (xyz snapped to the nearest point), so that
        ``kptool prepare`` keeps them on the points it samples.
        """
        entries = sorted(self.points.get(key, []), key=lambda e: e[0])
        if not entries:
            return shape
        base = np.asarray(shape.vertices if shape.has_mesh else shape.points, dtype=np.float64)
        xyz = np.empty((len(entries), 3))
        index = np.full(len(entries), -1, dtype=np.int64)
        for row, (_, i, p) in enumerate(entries):
            if i is not None:
                if i >= len(base):
                    what = "vertices" if shape.has_mesh else "points"
                    raise InputError(self.source, f"shape {key!r}: index {i} is out of range ({len(base)} {what})")
                xyz[row], index[row] = base[i], i
            else:
                xyz[row] = p
        shape.keypoints = xyz.astype(np.float32)
        shape.keypoint_ids = np.array([e[0] for e in entries], dtype=np.int64)
        if not shape.has_mesh:
            from scipy.spatial import cKDTree

            missing = index < 0
            if missing.any():
                index[missing] = cKDTree(base).query(xyz[missing])[1]
            shape.keypoint_point_index = index
        return shape


def read_correspondences(path: str | os.PathLike) -> CorrespondenceFile:
    """Read and check a ``kptool-correspondences`` file; :class:`InputError` names the place of a problem."""
    p = existing_file(path)
    doc = parse_json(read_bytes(p), p, "JSON correspondence file")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(p, f"not a correspondence file (expected an object with \"format\": \"{FORMAT}\")")
    if doc.get("version") != VERSION:
        raise InputError(p, f"unsupported correspondence file version {doc.get('version')!r} (expected {VERSION})")
    annotators = doc.get("annotators")
    if not isinstance(annotators, list) or not annotators:
        raise InputError(p, "annotators must be a non-empty list")
    out = CorrespondenceFile(sets=[], source=str(p))
    for a, ann in enumerate(annotators):
        where = f"annotators[{a}]"
        if not isinstance(ann, dict) or not isinstance(ann.get("sets"), list):
            raise InputError(p, f"{where} must be an object with a list of sets")
        name = str(ann.get("name", f"annotator {a}"))
        for s, entry in enumerate(ann["sets"]):
            _read_set(p, out, f"{where}.sets[{s}]", name, entry)
    if not out.sets:
        raise InputError(p, "holds no correspondence sets")
    return out


def _read_set(p: Path, out: CorrespondenceFile, where: str, annotator: str, entry: Any) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("points"), list) or not entry["points"]:
        raise InputError(p, f"{where} must be an object with a non-empty list of points")
    set_id = len(out.sets)
    out.sets.append({"id": set_id, "annotator": annotator, "name": str(entry.get("name", f"set {set_id}"))})
    for k, point in enumerate(entry["points"]):
        at = f"{where}.points[{k}]"
        if not isinstance(point, dict) or not isinstance(point.get("shape"), str) or not point["shape"]:
            raise InputError(p, f"{at} must be an object with a shape name")
        has_index, has_xyz = "index" in point, "xyz" in point
        if has_index == has_xyz:
            raise InputError(p, f"{at} must give exactly one of index and xyz")
        index = xyz = None
        if has_index:
            index = point["index"]
            if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                raise InputError(p, f"{at}.index must be a non-negative integer")
        else:
            v = point["xyz"]
            if not (isinstance(v, list) and len(v) == 3 and all(
                    isinstance(c, (int, float)) and not isinstance(c, bool) and np.isfinite(c) for c in v)):
                raise InputError(p, f"{at}.xyz must be 3 finite numbers")
            xyz = tuple(float(c) for c in v)
        entries = out.points.setdefault(point["shape"], [])
        if any(e[0] == set_id for e in entries):
            raise InputError(p, f"{at}: shape {point['shape']!r} is already in this set (one point per shape "
                                f"and set; another annotator's set may hold another)")
        entries.append((set_id, index, xyz))
