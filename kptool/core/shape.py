"""The in-memory record of one shape, shared by readers, generators and prepare.

Every field but ``points`` is optional, so that a reader fills what its format
has and later stages (prepare, training, metrics) use what is there without each
knowing every source. Arrays are numpy; shapes are given in brackets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Shape:
    """One shape: a point cloud and/or a triangle mesh, with optional annotations.

    Attributes:
        points: ``(N, 3)`` float32. For a mesh read from disk these are its vertices.
        id: identifier, unique within a dataset (e.g. a ShapeNet model id).
        category: category name or synset id, when known.
        normals: ``(N, 3)`` per-point normals.
        colors: ``(N, 3)`` uint8 per-point colours.
        point_labels: ``(N,)`` int64 part labels (ShapeNet-Part style, 1-based; 0 = none).
        vertices, faces: mesh, ``(V, 3)`` float and ``(F, 3)`` int64.
        face_labels: ``(F,)`` int64 part label of each face.
        keypoints: ``(K, 3)`` float32 annotated keypoints.
        keypoint_ids: ``(K,)`` int64 semantic ids, consistent across a category.
        keypoint_point_index: ``(K,)`` int64 index into ``points`` of each keypoint, -1 if none.
        symmetry_plane: ``(4,)`` plane ``n . x + d = 0`` (unit ``n``) of reflective symmetry.
        symmetric_pairs: ``(P, 2)`` int64 pairs of semantic ids mapped onto each other by it.
        extras: further named arrays (geodesic tables, ...), saved as they are.
        meta: JSON-serialisable facts (source path, up axis, ...).
    """

    points: np.ndarray
    id: str = ""
    category: str | None = None
    normals: np.ndarray | None = None
    colors: np.ndarray | None = None
    point_labels: np.ndarray | None = None
    vertices: np.ndarray | None = None
    faces: np.ndarray | None = None
    face_labels: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    keypoint_ids: np.ndarray | None = None
    keypoint_point_index: np.ndarray | None = None
    symmetry_plane: np.ndarray | None = None
    symmetric_pairs: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def has_mesh(self) -> bool:
        return self.faces is not None and self.vertices is not None and len(self.faces) > 0

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])

    @property
    def num_keypoints(self) -> int:
        return 0 if self.keypoints is None else int(self.keypoints.shape[0])
