"""Readers for benchmark-specific files: KeypointNet annotations and ShapeNet-Part labels.

KeypointNet annotation JSON (one file per category) is a list of records::

    {"class_id": "03001627", "model_id": "88382b...",
     "keypoints": [{"xyz": [x, y, z], "rgb": [r, g, b], "semantic_id": 0,
                    "pcd_info": {"point_index": 1476},
                    "mesh_info": {"face_index": 20521, "face_uv": [u, v, w]}}, ...],
     "symmetries": {"reflection": [{"kp_indexes": [0, 1]}, ...],
                    "rotation": [{"kp_indexes": [...], "is_circle": false, "circle": {}}]}}

``xyz`` equals point ``point_index`` of the model's 2048-point ``.pcd`` (ShapeNetCore.v2
frame, y-up). ``face_index`` counts the triangles of the model's ShapeNet mesh in
file order and ``face_uv`` are barycentric weights of that triangle's three
vertices (read the mesh with :func:`kptool.io.load_shape`, which keeps file order).
``kp_indexes`` index the record's ``keypoints`` list, not semantic ids; here they
are turned into semantic ids.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from kptool.core.shape import Shape
from kptool.errors import InputError
from kptool.io.safe_load import parse_json
from kptool.io.shapes import existing_file, load_shape, read_bytes, read_table


@dataclass
class KeypointAnnotation:
    """The keypoints of one KeypointNet model.

    Attributes:
        class_id, model_id: ShapeNet synset and model id.
        keypoints: ``(K, 3)`` float64 positions (ShapeNetCore.v2 frame).
        semantic_ids: ``(K,)`` int64 ids, consistent across the category.
        point_index: ``(K,)`` int64 index into the model's ``.pcd``; -1 when not given.
        face_index: ``(K,)`` int64 triangle of the model's mesh; -1 when not given.
        face_uv: ``(K, 3)`` float64 barycentric weights on that triangle; NaN when not given.
        symmetric_pairs: ``(P, 2)`` int64 semantic ids swapped by the reflective symmetry.
        rotation_groups: semantic ids of each rotational-symmetry group.
        source: the annotation file, for error messages.
    """

    class_id: str
    model_id: str
    keypoints: np.ndarray
    semantic_ids: np.ndarray
    point_index: np.ndarray
    face_index: np.ndarray
    face_uv: np.ndarray
    symmetric_pairs: np.ndarray
    rotation_groups: list[np.ndarray] = field(default_factory=list)
    source: str = ""

    @property
    def num_keypoints(self) -> int:
        return int(len(self.semantic_ids))

    def apply(self, shape: Shape) -> Shape:
        """A copy of ``shape`` (the model's point cloud) with these keypoints attached.

        Sets ``keypoints`` (float32), ``keypoint_ids``, ``keypoint_point_index`` and
        ``symmetric_pairs``; ``category`` defaults to ``class_id``.
        """
        if self.num_keypoints and self.point_index.max() >= shape.num_points:
            raise InputError(self.source, f"model {self.model_id}: point_index {int(self.point_index.max())} is out "
                                          f"of range for its cloud of {shape.num_points} points")
        return replace(shape, keypoints=self.keypoints.astype(np.float32), keypoint_ids=self.semantic_ids.copy(),
                       keypoint_point_index=self.point_index.copy(), symmetric_pairs=self.symmetric_pairs.copy(),
                       category=shape.category or self.class_id)


def read_keypointnet_annotations(path: str | os.PathLike) -> dict[str, KeypointAnnotation]:
    """Read a KeypointNet annotation JSON file: ``{model_id: KeypointAnnotation}`` in file order.

    The structure is checked strictly; a problem raises :class:`InputError` naming
    the file, the record index and the field.
    """
    p = existing_file(path)
    doc = parse_json(read_bytes(p), p)
    if not isinstance(doc, list):
        raise InputError(p, f"a KeypointNet annotation file must hold a list of records, got {type(doc).__name__}")
    out: dict[str, KeypointAnnotation] = {}
    for i, rec in enumerate(doc):
        ann = _parse_record(p, i, rec)
        if ann.model_id in out:
            raise InputError(p, f"record {i}: model_id {ann.model_id!r} appears twice")
        out[ann.model_id] = ann
    return out


def _parse_record(p: Path, i: int, rec: Any) -> KeypointAnnotation:
    def bad(where: str, expected: str) -> InputError:
        return InputError(p, f"record {i}: {where} must be {expected}")

    if not isinstance(rec, dict):
        raise bad("the record", "an object")
    for key in ("class_id", "model_id"):
        if not isinstance(rec.get(key), str) or not rec[key]:
            raise bad(key, "a non-empty string")
        # ids become file names under the dataset root: a path here would read files outside it
        if rec[key] in (".", "..") or any(c in rec[key] for c in "/\\\0") or ":" in rec[key]:
            raise bad(key, f"a plain name (no path), got {rec[key]!r}")
    kps = rec.get("keypoints")
    if not isinstance(kps, list):
        raise bad("keypoints", "a list")
    k = len(kps)
    xyz = np.empty((k, 3))
    ids = np.empty(k, dtype=np.int64)
    point_index = np.full(k, -1, dtype=np.int64)
    face_index = np.full(k, -1, dtype=np.int64)
    face_uv = np.full((k, 3), np.nan)
    for j, kp in enumerate(kps):
        where = f"keypoints[{j}]"
        if not isinstance(kp, dict):
            raise bad(where, "an object")
        xyz[j] = _numbers(kp.get("xyz"), 3, lambda: bad(f"{where}.xyz", "3 finite numbers"))
        ids[j] = _integer(kp.get("semantic_id"), lambda: bad(f"{where}.semantic_id", "a non-negative integer"))
        if "pcd_info" in kp:
            info = kp["pcd_info"]
            point_index[j] = _integer(info.get("point_index") if isinstance(info, dict) else None,
                                      lambda: bad(f"{where}.pcd_info.point_index", "a non-negative integer"))
        if "mesh_info" in kp:
            info = kp["mesh_info"] if isinstance(kp["mesh_info"], dict) else {}
            face_index[j] = _integer(info.get("face_index"),
                                     lambda: bad(f"{where}.mesh_info.face_index", "a non-negative integer"))
            face_uv[j] = _numbers(info.get("face_uv"), 3, lambda: bad(f"{where}.mesh_info.face_uv", "3 finite numbers"))
    if len(set(ids.tolist())) != k:
        raise bad("keypoints", "distinct semantic_ids")
    sym = rec.get("symmetries", {})
    if not isinstance(sym, dict):
        raise bad("symmetries", "an object")
    groups = []
    for kind in ("reflection", "rotation"):
        entries = sym.get(kind, [])
        if not isinstance(entries, list):
            raise bad(f"symmetries.{kind}", "a list")
        for e, entry in enumerate(entries):
            idx = entry.get("kp_indexes") if isinstance(entry, dict) else None
            where = f"symmetries.{kind}[{e}].kp_indexes"
            if not isinstance(idx, list) or not all(isinstance(v, int) and 0 <= v < k for v in idx) \
                    or (kind == "reflection" and len(idx) != 2):
                raise bad(where, f"a list of {'2 ' if kind == 'reflection' else ''}keypoint indexes below {k}")
            groups.append((kind, ids[idx]))
    pairs = [g for kind, g in groups if kind == "reflection"]
    return KeypointAnnotation(
        class_id=rec["class_id"], model_id=rec["model_id"], keypoints=xyz, semantic_ids=ids,
        point_index=point_index, face_index=face_index, face_uv=face_uv,
        symmetric_pairs=np.array(pairs, dtype=np.int64).reshape(-1, 2),
        rotation_groups=[g for kind, g in groups if kind == "rotation"], source=str(p),
    )


def _numbers(value: Any, n: int, error) -> list[float]:
    ok = isinstance(value, list) and len(value) == n and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in value)
    if not ok:
        raise error()
    return value


def _integer(value: Any, error) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise error()
    return value


def read_shapenet_part(pts_path: str | os.PathLike, seg_path: str | os.PathLike | None = None) -> Shape:
    """Read a ShapeNet-Part shape: ``<synset>/points/<id>.pts`` and its ``.seg`` labels.

    Args:
        pts_path: whitespace-separated xyz, one point per line.
        seg_path: one integer part label per line (1-based within the category).
            ``None``: use ``../points_label/<id>.seg`` beside the points folder when
            it exists (the benchmark's layout), else read no labels.

    Returns:
        A Shape with ``points`` ``(N, 3)`` float32, ``point_labels`` ``(N,)`` int64
        when labels were read, ``id`` = the file stem, ``category`` = the synset
        folder name when the file sits in a ``points`` folder.
    """
    pts = Path(pts_path)
    shape = load_shape(pts)
    if pts.parent.name == "points":
        shape.category = pts.parent.parent.name or None
        if seg_path is None:
            candidate = pts.parent.parent / "points_label" / f"{pts.stem}.seg"
            seg_path = candidate if candidate.is_file() else None
    if seg_path is None:
        return shape
    seg = existing_file(seg_path)
    labels = read_table(seg)
    if labels.shape[1] != 1 or (labels != np.round(labels)).any() or (labels < 0).any():
        raise InputError(seg, "expected one non-negative integer part label per line")
    if len(labels) != shape.num_points:
        raise InputError(seg, f"has {len(labels)} labels for {shape.num_points} points in {pts.name}")
    shape.point_labels = labels[:, 0].astype(np.int64)
    shape.meta["labels"] = str(seg)
    return shape
