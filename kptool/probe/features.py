"""The features file: one global feature per shape with its id, class and split.

``kptool features`` writes it and ``kptool eval svm`` reads it; it is self-contained
(the labels and splits travel with the features), so other methods' features can be
probed the same way. A ``numpy.savez`` file, read with ``allow_pickle=False``
(docs/formats.md)::

    features  (S, C) float32   one vector per shape
    ids       (S,)   str       shape ids
    labels    (S,)   int64     index into classes (-1: unlabelled)
    classes   (K,)   str       class names, sorted
    splits    (S,)   str       train, val or test
    meta      ()     str       JSON: format, version, dataset, checkpoint, model, ...
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kptool.errors import InputError
from kptool.io.atomic import atomic_path

FORMAT = "kptool-features"
VERSION = 1
SPLITS = ("train", "val", "test")
KEYS = ("features", "ids", "labels", "classes", "splits", "meta")


@dataclass
class FeatureSet:
    """Features of S shapes: ``features (S, C)``, ``ids``, ``labels (S,)`` into ``classes``, ``splits``."""

    features: np.ndarray
    ids: list[str]
    labels: np.ndarray
    classes: list[str]
    splits: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.features = np.asarray(self.features, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.ids, self.classes, self.splits = list(self.ids), list(self.classes), list(self.splits)

    def select(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(features (S_split, C), labels (S_split,))`` of one split's labelled shapes."""
        keep = (np.asarray(self.splits) == split) & (self.labels >= 0)
        return self.features[keep], self.labels[keep]


def write_features(path: str | os.PathLike, fs: FeatureSet, overwrite: bool = False) -> Path:
    """Write a features file atomically (refusing to replace one unless ``overwrite``)."""
    meta = {"format": FORMAT, "version": VERSION, **fs.meta}
    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, features=fs.features, ids=np.array(fs.ids, dtype=str), labels=fs.labels,
                     classes=np.array(fs.classes, dtype=str), splits=np.array(fs.splits, dtype=str),
                     meta=np.array(json.dumps(meta)))
    return Path(path)


def read_features(path: str | os.PathLike) -> FeatureSet:
    """Read and check a features file; :class:`InputError` naming the file for anything malformed."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such features file")
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise InputError(p, f"not a features file ({e.__class__.__name__}: {e})") from None
    missing = [k for k in KEYS if k not in data]
    if missing:
        raise InputError(p, f"not a kptool features file (missing {', '.join(missing)})")
    try:
        meta = json.loads(str(data["meta"]))
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(p, f'not a kptool features file (meta needs "format": "{FORMAT}")')
    if meta.get("version") != VERSION:
        raise InputError(p, f"unsupported features file version {meta.get('version')!r}")
    feats, labels = data["features"], data["labels"]
    if feats.ndim != 2 or not np.issubdtype(feats.dtype, np.floating):
        raise InputError(p, f"features must be a (S, C) float array, got {feats.dtype} {feats.shape}")
    if not np.isfinite(feats).all():
        raise InputError(p, "features contain NaN or inf")
    s = feats.shape[0]
    for key in ("ids", "labels", "splits"):
        if data[key].shape != (s,):
            raise InputError(p, f"{key} must have one entry per feature ({s}), got shape {data[key].shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(p, f"labels must be integers, got {labels.dtype}")
    classes = [str(c) for c in data["classes"]]
    if s and (labels.max() >= len(classes) or labels.min() < -1):
        raise InputError(p, f"labels must lie in [-1, {len(classes) - 1}] (the classes), got "
                            f"[{labels.min()}, {labels.max()}]")
    splits = [str(x) for x in data["splits"]]
    bad = sorted(set(splits) - set(SPLITS))
    if bad:
        raise InputError(p, f"unknown split(s) {', '.join(bad)} (expected {', '.join(SPLITS)})")
    meta = {k: v for k, v in meta.items() if k not in ("format", "version")}
    return FeatureSet(feats, [str(i) for i in data["ids"]], labels, classes, splits, meta)
