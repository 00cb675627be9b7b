"""The predictions file: keypoints predicted for the shapes of a prepared dataset.

``kptool detect`` writes it and ``kptool eval`` reads it; other methods can write
it too (see docs/formats.md). It is JSON::

    {
      "format": "kptool-predictions", "version": 1,
      "method": "skeleton-mutual",          # free text
      "ordered": true,                      # index = semantic slot?
      "frame": "prepared",                  # keypoints in the prepared frame of the dataset
      "dataset": "/path/to/prepared",       # informational
      "split": "test",
      "shapes": [{"id": "<shape id>", "keypoints": [[x, y, z], ...],
                  "scores": [...]}]         # scores optional, one per keypoint
    }

Keypoints are in the dataset's prepared frame. ``frame: "original"`` is also
accepted: the reader then maps them into the prepared frame with each shape's
stored transform (see :func:`to_prepared_frame`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kptool.errors import InputError
from kptool.io.atomic import atomic_path
from kptool.io.safe_load import parse_json

FORMAT = "kptool-predictions"
VERSION = 1
FRAMES = ("prepared", "original")


@dataclass
class Predictions:
    """Keypoints per shape id; each value is ``(K_i, 3)`` float32."""

    keypoints: dict[str, np.ndarray]
    method: str = ""
    ordered: bool = True
    frame: str = "prepared"
    dataset: str = ""
    split: str = ""
    scores: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return list(self.keypoints)

    @property
    def num_keypoints(self) -> int | None:
        """The common keypoint count, or ``None`` when it varies between shapes."""
        counts = {len(v) for v in self.keypoints.values()}
        return counts.pop() if len(counts) == 1 else None


def predictions_json(preds: Predictions) -> str:
    """The predictions document as a JSON string (what :func:`write_predictions` writes)."""
    doc = {
        "format": FORMAT, "version": VERSION, "method": preds.method, "ordered": bool(preds.ordered),
        "frame": preds.frame, "dataset": preds.dataset, "split": preds.split,
        "shapes": [],
    }
    for sid, kp in preds.keypoints.items():
        rec = {"id": sid, "keypoints": np.asarray(kp, dtype=float).round(7).tolist()}
        if sid in preds.scores:
            rec["scores"] = np.asarray(preds.scores[sid], dtype=float).round(7).tolist()
        doc["shapes"].append(rec)
    return json.dumps(doc)


def write_predictions(path: str | os.PathLike, preds: Predictions, overwrite: bool = False) -> Path:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(predictions_json(preds), encoding="utf-8")
    return Path(path)


def read_predictions(path: str | os.PathLike) -> Predictions:
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such predictions file")
    doc = parse_json(p.read_bytes(), p, "JSON predictions file")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(p, f'not a kptool predictions file (expected "format": "{FORMAT}")')
    if doc.get("version") != VERSION:
        raise InputError(p, f"unsupported predictions version {doc.get('version')!r} (this kptool reads {VERSION})")
    frame = doc.get("frame", "prepared")
    if frame not in FRAMES:
        raise InputError(p, f"unknown frame {frame!r}: expected one of {', '.join(FRAMES)}")
    shapes = doc.get("shapes")
    if not isinstance(shapes, list):
        raise InputError(p, '"shapes" must be a list')
    kps: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    for i, rec in enumerate(shapes):
        if not isinstance(rec, dict) or "id" not in rec or "keypoints" not in rec:
            raise InputError(p, f'shape record {i} needs "id" and "keypoints"')
        kp = _keypoints(p, rec)
        sid = str(rec["id"])
        if sid in kps:
            raise InputError(p, f"shape {sid!r} appears twice")
        kps[sid] = kp
        if "scores" in rec:
            scores[sid] = _scores(p, rec, len(kp))
    return Predictions(kps, method=str(doc.get("method", "")), ordered=bool(doc.get("ordered", True)),
                       frame=frame, dataset=str(doc.get("dataset", "")), split=str(doc.get("split", "")),
                       scores=scores)


# Prepared shapes fit in a unit-sized box; original frames are in metres or millimetres. Anything
# beyond this is no coordinate (1e38 still passes as a finite float32).
MAX_COORDINATE = 1e6


def _keypoints(p: Path, rec: dict) -> np.ndarray:
    """``rec["keypoints"]`` as ``(K, 3)`` float32: a list of [x, y, z], finite and of sane size."""
    try:
        kp = np.asarray(rec["keypoints"], dtype=np.float64)
    except (ValueError, TypeError):
        kp = None
    if kp is not None and kp.size == 0:
        kp = kp.reshape(0, 3)   # no keypoints for this shape
    if kp is None or kp.ndim != 2 or kp.shape[1] != 3:
        raise InputError(p, f"shape {rec['id']!r}: keypoints must be a list of [x, y, z]")
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
    """Predictions in the dataset's prepared frame (a no-op when they already are).

    ``dataset`` is a :class:`~kptool.data.prepared.PreparedDataset`; each shape's
    stored transform maps original-frame keypoints into the prepared frame.
    """
    if preds.frame == "prepared":
        return preds
    out = {}
    for sid, kp in preds.keypoints.items():
        transform = dataset[dataset.index_of(sid)].meta["transform"]
        out[sid] = transform.apply(kp).astype(np.float32)
    return Predictions(out, method=preds.method, ordered=preds.ordered, frame="prepared", dataset=preds.dataset,
                       split=preds.split, scores=preds.scores)
