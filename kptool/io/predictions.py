"""The predictions artifact: what a method predicted for the shapes of a dataset, by kind.

``kptool detect`` writes it and ``kptool eval`` reads it; other methods can write it
too (docs/formats.md). It is a JSON document; kinds other than keypoints keep their
arrays in an NPZ file beside it (``p.json`` -> ``p.npz``)::

    {
      "format": "kptool-predictions", "version": 2,
      "kind": "keypoints",                  # see KINDS
      "method": "skeleton-mutual",          # free text
      "ordered": true,                      # keypoints: index = semantic slot?
      "frame": "prepared",                  # 3D keypoints: prepared frame of the dataset, or original
      "dataset": "/path/to/prepared",       # informational
      "split": "test",
      "keypoint_ids": [0, 3, ...],          # optional: semantic id of each ordered keypoint slot
      "class_names": ["bed", "chair", ...], # class_logits: the class of each score (the model's classes)
      "arrays": "p.npz",                    # array kinds: the NPZ beside this file
      "shapes": [{"id": "<shape id>", "keypoints": [[x, y, z], ...], "scores": [...],    # keypoints
                  "details": {"<name>": [...], ...}},                                     # optional
                 {"id": "<image>", "keypoints": [[u, v], ...], "visible": [...],         # keypoints_2d
                  "keypoint_ids": [...]},                                                 # optional
                 {"id": "<shape id>", "array": "a0"},                                     # array kinds
                 {"id": "<shape id>", "array": "a1", "class": "chair"}]                   # class_logits: argmax
    }

Keypoint records may carry ``details``: further per-shape results of the method, named
arrays as nested lists (a shape-basis model's nodes, merged keypoints, symmetry-plane normal
and angle; USIP's sigmas), always in the file's frame of the keypoints (``prepared`` only).
Version 1 files (keypoints only, no ``kind``) are still read. ``frame: "original"``
keypoints are mapped into the prepared frame with each shape's stored transform
(:func:`to_prepared_frame`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kptool.errors import InputError, KptoolError
from kptool.io.atomic import atomic_path
from kptool.io.safe_load import parse_json

FORMAT = "kptool-predictions"
VERSION = 2
READS = (1, 2)
FRAMES = ("prepared", "original")
# kind -> per-shape array it holds
KINDS = {
    "keypoints": "(K, 3) keypoints, inline",
    "keypoints_2d": "(K, 2) image keypoints with (K,) visibility and semantic ids, inline, per image",
    "embeddings": "(N, D) per-point embeddings, in the NPZ",
    "point_logits": "(N, J) per-point class scores, in the NPZ",
    "global_features": "(C,) one feature vector per shape, in the NPZ",
    "class_logits": "(C,) class scores per shape, in the NPZ",
}
INLINE = ("keypoints", "keypoints_2d")


@dataclass
class Predictions:
    """Predictions per shape id.

    Attributes:
        keypoints: keypoints kinds: ``{id: (K_i, 3) or (K_i, 2) float32}``.
        arrays: array kinds: ``{id: array}`` (see :data:`KINDS`).
        kind: one of :data:`KINDS`.
        scores: optional per-keypoint scores; visible: ``keypoints_2d`` visibility per keypoint.
        details: optional per-shape named arrays beside the keypoints (``{id: {name: array}}``).
        semantic_ids: ``keypoints_2d``: per record ``(K,)`` semantic ids, when they differ between records
            (otherwise ``keypoint_ids`` names the slots for all of them).
    """

    keypoints: dict[str, np.ndarray] = field(default_factory=dict)
    method: str = ""
    ordered: bool = True
    frame: str = "prepared"
    dataset: str = ""
    split: str = ""
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    kind: str = "keypoints"
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    visible: dict[str, np.ndarray] = field(default_factory=dict)
    keypoint_ids: list[int] | None = None    # ordered keypoints: the semantic id of each slot, when known
    details: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    class_names: list[str] | None = None      # class_logits: the class of each score, when known
    semantic_ids: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise KptoolError(f"unknown predictions kind {self.kind!r} (known: {', '.join(KINDS)})")

    @property
    def values(self) -> dict[str, np.ndarray]:
        """``{id: array}`` of this kind (keypoints or arrays)."""
        return self.keypoints if self.kind in INLINE else self.arrays

    @property
    def ids(self) -> list[str]:
        return list(self.values)

    def ids_of(self, sid: str) -> np.ndarray:
        """``(K,)`` semantic ids of a record's keypoints: its own, else the slots' ``keypoint_ids``, else 0..K-1."""
        if sid in self.semantic_ids:
            return self.semantic_ids[sid]
        k = len(self.keypoints[sid])
        if self.keypoint_ids is not None and len(self.keypoint_ids) == k:
            return np.asarray(self.keypoint_ids, dtype=np.int64)
        return np.arange(k, dtype=np.int64)

    @property
    def num_keypoints(self) -> int | None:
        """The common keypoint count, or ``None`` when it varies between shapes."""
        counts = {len(v) for v in self.keypoints.values()}
        return counts.pop() if len(counts) == 1 else None


def arrays_path(path: str | os.PathLike) -> Path:
    """The NPZ file that holds an array kind's arrays: ``p.json`` -> ``p.npz``."""
    return Path(path).with_suffix(".npz")


def predictions_json(preds: Predictions, arrays_file: str | None = None) -> str:
    """The JSON document (what :func:`write_predictions` writes); array kinds name ``arrays_file``."""
    doc = {"format": FORMAT, "version": VERSION, "kind": preds.kind, "method": preds.method,
           "ordered": bool(preds.ordered), "frame": preds.frame, "dataset": preds.dataset, "split": preds.split,
           "shapes": []}
    if preds.keypoint_ids is not None:
        doc["keypoint_ids"] = [int(i) for i in preds.keypoint_ids]
    if preds.kind not in INLINE:
        if arrays_file is None:
            raise KptoolError(f"{preds.kind} predictions keep their arrays in an NPZ file: give an output file")
        doc["arrays"] = arrays_file
        doc["shapes"] = [{"id": sid, "array": f"a{i}"} for i, sid in enumerate(preds.arrays)]
        if preds.class_names is not None:
            doc["class_names"] = [str(n) for n in preds.class_names]
            for rec, scores in zip(doc["shapes"], preds.arrays.values()):
                rec["class"] = doc["class_names"][int(np.argmax(scores))]
        return json.dumps(doc)
    for sid, kp in preds.keypoints.items():
        rec = {"id": sid, "keypoints": np.asarray(kp, dtype=float).round(7).tolist()}
        if sid in preds.scores:
            rec["scores"] = np.asarray(preds.scores[sid], dtype=float).round(7).tolist()
        if sid in preds.visible:
            rec["visible"] = np.asarray(preds.visible[sid], dtype=bool).tolist()
        if sid in preds.semantic_ids:
            rec["keypoint_ids"] = np.asarray(preds.semantic_ids[sid], dtype=np.int64).tolist()
        if preds.details.get(sid):
            rec["details"] = {k: np.asarray(v, dtype=float).round(7).tolist() for k, v in preds.details[sid].items()}
        doc["shapes"].append(rec)
    return json.dumps(doc)


def write_predictions(path: str | os.PathLike, preds: Predictions, overwrite: bool = False) -> Path:
    """Write the JSON document (and, for array kinds, the NPZ beside it) atomically; returns the JSON path."""
    path = Path(path)
    arrays_file = None
    if preds.kind not in INLINE:
        npz = arrays_path(path)
        if npz == path:
            raise KptoolError(f"{path}: the predictions document must not be a .npz file (its arrays go there)")
        with atomic_path(npz, overwrite=overwrite) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **{f"a{i}": np.asarray(a) for i, a in enumerate(preds.arrays.values())})
        arrays_file = npz.name
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(predictions_json(preds, arrays_file), encoding="utf-8")
    return path


def _load_arrays(p: Path, doc: dict, shapes: list) -> dict[str, np.ndarray]:
    name = doc.get("arrays")
    if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", ".."):
        raise InputError(p, f'"arrays" must name the NPZ file beside it, got {name!r}')
    npz = p.parent / name
    try:
        with np.load(npz, allow_pickle=False) as z:
            stored = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise InputError(npz, f"no such file (the arrays of {p.name})") from None
    except (OSError, ValueError, EOFError) as e:
        raise InputError(npz, f"unreadable NPZ ({e})") from None
    out: dict[str, np.ndarray] = {}
    for i, rec in enumerate(shapes):
        if not isinstance(rec, dict) or "id" not in rec or rec.get("array") not in stored:
            raise InputError(p, f'shape record {i} needs "id" and an "array" stored in {name}')
        if str(rec["id"]) in out:
            raise InputError(p, f"shape {rec['id']!r} appears twice")
        array = stored[rec["array"]]
        if array.dtype.kind not in "fiu" or not np.isfinite(array).all():
            raise InputError(npz, f"shape {rec['id']!r}: its array must hold finite numbers")
        out[str(rec["id"])] = array
    return out


def read_predictions(path: str | os.PathLike) -> Predictions:
    """Read a predictions file of any kind (versions 1 and 2)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such predictions file")
    doc = parse_json(p.read_bytes(), p, "JSON predictions file")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(p, f'not a kptool predictions file (expected "format": "{FORMAT}")')
    if doc.get("version") not in READS:
        raise InputError(p, f"unsupported predictions version {doc.get('version')!r} "
                            f"(this kptool reads {', '.join(map(str, READS))})")
    kind = doc.get("kind", "keypoints")
    if kind not in KINDS:
        raise InputError(p, f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    frame = doc.get("frame", "prepared")
    if frame not in FRAMES:
        raise InputError(p, f"unknown frame {frame!r}: expected one of {', '.join(FRAMES)}")
    shapes = doc.get("shapes")
    if not isinstance(shapes, list):
        raise InputError(p, '"shapes" must be a list')
    slot_ids = doc.get("keypoint_ids")
    if slot_ids is not None and not (isinstance(slot_ids, list) and all(
            isinstance(i, int) and not isinstance(i, bool) for i in slot_ids)):
        raise InputError(p, '"keypoint_ids" must be a list of integers (the semantic id of each keypoint slot)')
    common = dict(method=str(doc.get("method", "")), ordered=bool(doc.get("ordered", True)), frame=frame,
                  dataset=str(doc.get("dataset", "")), split=str(doc.get("split", "")), kind=kind,
                  keypoint_ids=slot_ids)
    if kind not in INLINE:
        return Predictions(arrays=_load_arrays(p, doc, shapes), class_names=_class_names(p, doc), **common)
    dim = 3 if kind == "keypoints" else 2
    kps: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    visible: dict[str, np.ndarray] = {}
    details: dict[str, dict[str, np.ndarray]] = {}
    semantic: dict[str, np.ndarray] = {}
    for i, rec in enumerate(shapes):
        if not isinstance(rec, dict) or "id" not in rec or "keypoints" not in rec:
            raise InputError(p, f'shape record {i} needs "id" and "keypoints"')
        kp = _keypoints(p, rec, dim)
        sid = str(rec["id"])
        if sid in kps:
            raise InputError(p, f"shape {sid!r} appears twice")
        kps[sid] = kp
        if "scores" in rec:
            scores[sid] = _scores(p, rec, len(kp))
        if "visible" in rec:
            visible[sid] = np.asarray(rec["visible"], dtype=bool).reshape(-1)
            if visible[sid].shape[0] != kp.shape[0]:
                raise InputError(p, f"shape {sid!r}: {kp.shape[0]} keypoints but {visible[sid].shape[0]} "
                                    f"visibility flags")
        if "details" in rec:
            details[sid] = _details(p, sid, rec["details"])
        if "keypoint_ids" in rec:
            semantic[sid] = _record_ids(p, sid, rec["keypoint_ids"], len(kp))
    return Predictions(kps, scores=scores, visible=visible, details=details, semantic_ids=semantic, **common)


def _record_ids(p: Path, sid: str, raw, k: int) -> np.ndarray:
    """A record's own ``keypoint_ids``: K integers."""
    if not (isinstance(raw, list) and len(raw) == k and all(isinstance(i, int) and not isinstance(i, bool)
                                                             for i in raw)):
        raise InputError(p, f'shape {sid!r}: "keypoint_ids" must be {k} integers, one per keypoint')
    return np.asarray(raw, dtype=np.int64)


def _class_names(p: Path, doc: dict) -> list[str] | None:
    """``class_names`` of a class_logits file: distinct strings, one per score of every shape (checked later)."""
    names = doc.get("class_names")
    if names is None:
        return None
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)
            and len(set(names)) == len(names)):
        raise InputError(p, '"class_names" must be a list of distinct class names')
    return names


def _details(p: Path, sid: str, raw) -> dict[str, np.ndarray]:
    """A keypoint record's ``details``: ``{name: finite float array}``."""
    if not isinstance(raw, dict):
        raise InputError(p, f'shape {sid!r}: "details" must be a mapping of names to arrays')
    out = {}
    for name, value in raw.items():
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (ValueError, TypeError):
            raise InputError(p, f"shape {sid!r}: detail {name!r} is not a numeric array") from None
        if not np.isfinite(arr).all():
            raise InputError(p, f"shape {sid!r}: detail {name!r} contains NaN or inf")
        out[str(name)] = arr
    return out


# Prepared shapes fit in a unit-sized box; original frames are in metres or millimetres. Anything
# beyond this is no coordinate (1e38 still passes as a finite float32).
MAX_COORDINATE = 1e6


def _keypoints(p: Path, rec: dict, dim: int = 3) -> np.ndarray:
    """``rec["keypoints"]`` as ``(K, dim)`` float32: a list of dim-vectors, finite and of sane size."""
    try:
        kp = np.asarray(rec["keypoints"], dtype=np.float64)
    except (ValueError, TypeError):
        kp = None
    if kp is not None and kp.size == 0:
        kp = kp.reshape(0, dim)   # no keypoints for this shape
    if kp is None or kp.ndim != 2 or kp.shape[1] != dim:
        what = "[x, y, z]" if dim == 3 else "[u, v]"
        raise InputError(p, f"shape {rec['id']!r}: keypoints must be a list of {what}")
    if not np.isfinite(kp).all():
        raise InputError(p, f"shape {rec['id']!r}: keypoints contain NaN or inf")
    if len(kp) and np.abs(kp).max() > MAX_COORDINATE:
        raise InputError(p, f"shape {rec['id']!r}: keypoint coordinates beyond {MAX_COORDINATE:g} "
                            f"({np.abs(kp).max():.3g})")
    return kp.astype(np.float32)


def _scores(p: Path, rec: dict, k: int) -> np.ndarray:
    try:
        s = np.asarray(rec["scores"], dtype=np.float64)
    except (ValueError, TypeError):
        s = None
    if s is None or s.shape != (k,) or not np.isfinite(s).all():
        raise InputError(p, f"shape {rec['id']!r}: scores must be {k} finite numbers, one per keypoint")
    return s.astype(np.float32)


def to_prepared_frame(preds: Predictions, dataset) -> Predictions:
    """3D keypoint predictions in the dataset's prepared frame (a no-op when they already are).

    ``dataset`` is a :class:`~kptool.data.prepared.PreparedDataset`; each shape's
    stored transform maps original-frame keypoints into the prepared frame.
    """
    if preds.frame == "prepared" or preds.kind != "keypoints":
        return preds
    out = {}
    for sid, kp in preds.keypoints.items():
        transform = dataset[dataset.index_of(sid)].meta["transform"]
        out[sid] = transform.apply(kp).astype(np.float32)
    return Predictions(out, method=preds.method, ordered=preds.ordered, frame="prepared", dataset=preds.dataset,
                       split=preds.split, scores=preds.scores)
