"""A summary of a prepared dataset (what ``kptool info`` prints)."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np

from kptool.data.prepared import SPLITS, read_manifest


def summarize(root: str | os.PathLike) -> dict[str, Any]:
    """Counts per split, keypoints per shape, frame, failures and extras of a prepared dataset."""
    m = read_manifest(root)
    shapes = m["shapes"]
    kp = np.array([r.get("num_keypoints", 0) for r in shapes]) if shapes else np.zeros(0)
    ids = m.get("keypoint_ids", [])
    return {
        "path": str(root),
        "source": m.get("source", {}),
        "category": m.get("category"),
        "counts": {s: sum(r["split"] == s for r in shapes) for s in SPLITS} | {"total": len(shapes)},
        # class label -> shapes (labelled sets: furniture, class folders, pooled built-in categories)
        "classes": dict(sorted(Counter(r.get("category") or m.get("category") for r in shapes
                                       if r.get("category") or m.get("category")).items())),
        "points_per_shape": sorted({r["num_points"] for r in shapes}),
        "keypoints_per_shape": {"min": int(kp.min()), "mean": round(float(kp.mean()), 2), "max": int(kp.max())}
        if len(kp) else None,
        "semantic_ids": ids,
        "with_mesh": sum(bool(r.get("has_mesh")) for r in shapes),
        "with_part_labels": sum(bool(r.get("has_part_labels")) for r in shapes),
        "frame": m.get("frame", {}),
        "options": m.get("options", {}),
        "extras": m.get("extras", {}),
        "failures": m.get("failures", []),
        "software": m.get("software", {}),
        "created": m.get("created"),
    }
