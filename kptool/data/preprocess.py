"""Turn one raw shape into a prepared one: sample, subsample, rotate up, normalise.

This is the per-shape work of ``kptool prepare`` and of ``kptool detect`` on raw
files, so both see shapes in exactly the same frame.

1. Points: a mesh is sampled area-weighted (``oversample x points`` samples,
   trimesh), a cloud is used as it is; then farthest point sampling down to
   ``points`` (a cloud that already has exactly ``points`` points keeps its order,
   so KeypointNet ``pcd_info.point_index`` stays valid). A shape with both a
   mesh and a cloud (``meta["points_source"] == "cloud"``) uses the cloud.
2. Frame: the up axis is rotated to y, then the chosen normalisation
   (:mod:`kptool.core.transform`) is computed on the sampled points.
3. Everything else (mesh, keypoints, symmetry plane, labels) is carried into the
   same frame; the transform is returned so results map back.
"""

from __future__ import annotations

import numpy as np

from kptool.core.shape import Shape
from kptool.core.transform import Transform, canonical_frame, normalization, up_rotation
from kptool.errors import InputError

DEFAULT_POINTS = 2048
DEFAULT_OVERSAMPLE = 4
# Coordinates are metres or millimetres; 1e15 leaves room for squaring without overflow.
MAX_COORDINATE = 1e15


def check_finite(shape: Shape) -> None:
    """Raise :class:`InputError` for empty shapes or NaN/inf coordinates."""
    src = shape.meta.get("source")
    arrays = [("points", shape.points)]
    if shape.has_mesh:
        arrays.append(("vertices", shape.vertices))
    if shape.keypoints is not None:
        arrays.append(("keypoints", shape.keypoints))
    for name, a in arrays:
        bad = int((~np.isfinite(np.asarray(a, dtype=np.float64))).any(axis=-1).sum()) if len(a) else 0
        if bad:
            raise InputError(src, f"{bad} {name} have NaN or inf coordinates")
    if len(shape.points) == 0:
        raise InputError(src, "contains no points")
    points = np.asarray(shape.vertices if shape.has_mesh else shape.points, dtype=np.float64)
    largest = float(np.abs(points).max())
    if largest > MAX_COORDINATE:   # squares and cross products of such values overflow float64
        raise InputError(src, f"coordinates up to {largest:.3g}: too large to normalise (at most {MAX_COORDINATE:g})")
    extent = float((points.max(axis=0) - points.min(axis=0)).max())
    if extent <= largest * 1e-9 or extent == 0:
        raise InputError(src, f"all {len(points)} points coincide (extent {extent:.3g}): no shape to normalise")


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted uniform samples on a triangle mesh.

    Returns ``(points (count, 3), face_index (count,))``. Degenerate (zero-area)
    meshes raise :class:`InputError`.
    """
    import trimesh

    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    if not np.isfinite(mesh.area) or mesh.area <= 0:
        raise InputError(None, "mesh has zero surface area")
    pts, face_index = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.asarray(pts, dtype=np.float64), np.asarray(face_index, dtype=np.int64)


def fps_indices(points: np.ndarray, count: int) -> np.ndarray:
    """Farthest point sampling indices ``(count,)`` into ``points (N, 3)``, N >= count."""
    import torch

    from kptool.ops import farthest_point_sampling

    pts = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))[None]
    return farthest_point_sampling(pts, count)[0].numpy()


def transform_plane(plane: np.ndarray, transform: Transform) -> np.ndarray:
    """Map a plane ``n . x + d = 0`` through ``x' = s R x + t`` (unit normal kept)."""
    s = transform.scale
    rot = transform.matrix[:3, :3] / s
    n = rot @ np.asarray(plane[:3], dtype=np.float64)
    d = s * float(plane[3]) - float(n @ transform.matrix[:3, 3])
    norm = float(np.linalg.norm(n))
    return np.array([*(n / norm), d / norm])


def prepare_shape(shape: Shape, points: int = DEFAULT_POINTS, normalize: str = "skeleton-merger",
                  up: str = "y", seed: int = 0, oversample: int = DEFAULT_OVERSAMPLE,
                  canonical: bool = False) -> tuple[Shape, Transform]:
    """Prepare one shape; returns ``(prepared shape, transform original -> prepared)``.

    The prepared shape has ``points (points, 3)`` float32 and, where the input
    had them: ``normals``, ``colors``, ``point_labels`` (for a mesh, the sampled
    faces' ``face_labels``), the mesh, ``keypoints`` with ``keypoint_ids`` and
    ``keypoint_point_index`` (index of the sampled point the keypoint sits on, or
    of the nearest one when it was not kept; ``meta["keypoints_on_points"]``
    says which), the symmetry plane and pairs. Raises :class:`InputError` for
    empty or non-finite input and for clouds with fewer than ``points`` points.

    ``canonical`` first brings the shape into :func:`~kptool.data.transform.canonical_frame`
    (bounding box centred, unit diagonal), so that the result is the same wherever
    the file's origin is and whatever its units: what ``kptool detect`` does with raw
    files. ``kptool prepare`` keeps the source's own frame (the reference code's).
    """
    check_finite(shape)
    src = shape.meta.get("source")
    frame = Transform.from_parts(rotation=up_rotation(up))
    labels = shape.point_labels
    normals = shape.normals
    colors = shape.colors
    kp_index = shape.keypoint_point_index
    # A mesh is sampled unless a scanned/annotated cloud came with it (KeypointNet: pcd + mesh).
    if shape.has_mesh and shape.meta.get("points_source") != "cloud":
        dense, face_index = sample_surface(shape.vertices, shape.faces, points * oversample, seed)
        colors = kp_index = None
        labels = None if shape.face_labels is None else np.asarray(shape.face_labels)[face_index]
        tri = np.asarray(shape.vertices, dtype=np.float64)[np.asarray(shape.faces)[face_index]]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])   # normalised below
    else:
        dense = np.asarray(shape.points, dtype=np.float64)
        if len(dense) < points:
            raise InputError(src, f"has {len(dense)} points, fewer than the {points} asked for (use --points)")
    if canonical:
        frame = frame.then(canonical_frame(frame.apply(dense)))
    keep = np.arange(len(dense)) if len(dense) == points else fps_indices(frame.apply(dense), points)

    sampled = frame.apply(dense[keep])
    transform = frame.then(normalization(sampled, normalize))
    out = Shape(points=transform.apply(dense[keep]).astype(np.float32), id=shape.id, category=shape.category,
                meta={**shape.meta, "up": up, "normalize": normalize})
    linear = transform.matrix[:3, :3] / transform.scale
    if normals is not None:
        n = np.asarray(normals, dtype=np.float64)[keep] @ linear.T
        out.normals = (n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    if colors is not None:
        out.colors = np.asarray(colors)[keep]
    if labels is not None:
        out.point_labels = np.asarray(labels, dtype=np.int64)[keep]
    if shape.has_mesh:
        out.vertices = transform.apply(np.asarray(shape.vertices, dtype=np.float64))
        out.faces = np.asarray(shape.faces, dtype=np.int64)
        if shape.face_labels is not None:
            out.face_labels = np.asarray(shape.face_labels, dtype=np.int64)
    if shape.keypoints is not None and len(shape.keypoints):
        out.keypoints = transform.apply(np.asarray(shape.keypoints, dtype=np.float64)).astype(np.float32)
        out.keypoint_ids = None if shape.keypoint_ids is None else np.asarray(shape.keypoint_ids, dtype=np.int64)
        out.keypoint_point_index, out.meta["keypoints_on_points"] = _keypoint_indices(out, keep, kp_index)
        if kp_index is not None and out.meta["keypoints_on_points"]:
            # KeypointNet: the keypoint *is* pcd[point_index]; its JSON xyz only differs by rounding.
            out.keypoints = out.points[out.keypoint_point_index].copy()
    if shape.symmetry_plane is not None:
        out.symmetry_plane = transform_plane(shape.symmetry_plane, transform)
    if shape.symmetric_pairs is not None:
        out.symmetric_pairs = np.asarray(shape.symmetric_pairs, dtype=np.int64)
    return out, transform


def _keypoint_indices(out: Shape, keep: np.ndarray, source_index: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """Index of each keypoint's point among the kept points (nearest point when it was dropped)."""
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(out.points).query(out.keypoints)
    nearest = np.asarray(nearest, dtype=np.int64)
    if source_index is None:
        return nearest, False
    position = np.full(int(max(keep.max(), np.max(source_index))) + 1, -1, dtype=np.int64)
    position[keep] = np.arange(len(keep))
    mapped = position[np.asarray(source_index, dtype=np.int64)]
    on_points = bool((mapped >= 0).all())
    return np.where(mapped >= 0, mapped, nearest), on_points
