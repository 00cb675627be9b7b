"""Occupancy voxel targets in the canonical frame (``kptool prepare voxels``).

The canonical frame is the frame the renders' cameras are defined in (``kptool render``),
normalised: the origin at the centre of the shape's bounding box (the cameras' look-at
``target``) and the unit = the shape size (half the longest side of the box, what camera
distances are drawn in). The grid is the cube ``[-1, 1]^3`` of that frame cut into
``R^3`` voxels, voxel ``(i, j, k)`` centred at ``-1 + (i + 0.5) 2 / R`` along x, y, z;
the shape touches the cube on its longest axis.

Occupancy: the mesh's surface voxels (trimesh's ``voxelize_subdivide``: faces are
subdivided until every edge is shorter than a voxel, and the voxels holding the vertices
are set) and then every voxel enclosed by them (trimesh's ``fill``, a binary hole fill).
No watertightness is needed: on a closed surface this is the solid; where a mesh is open
(furniture exports: open and non-manifold parts) an enclosure with a gap wider than a voxel
is not filled and stays a one-voxel-thick shell, which is also what the occupancy of a
thin sheet is at this resolution. Shapes prepared from point clouds have no mesh and fail
with a one-line reason.

Stored per shape as prepared-dataset extras ``extras/voxels-<R>/<id>.npy`` (``(R, R, R)``
uint8, 1 = occupied, axes x, y, z) and ``extras/canonical-frame/<id>.npy`` (``(4,)`` float64:
centre x, y, z and size, prepared-frame units), so a prediction maps back with
``x_prepared = centre + size * x_canonical``.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from kptool.data.prepare import run_jobs
from kptool.data.prepared import extra_path, load_prepared_shape, read_manifest, save_extra, write_manifest
from kptool.errors import KptoolError
from kptool.failures import Failures
from kptool.io.atomic import safe_join

RESOLUTIONS = (16, 32, 64, 128)
FRAME_TABLE = "canonical-frame"


def voxel_table(resolution: int) -> str:
    """The extras name of the ``resolution^3`` occupancy grids."""
    return f"voxels-{resolution}"


def canonical_frame(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """``(centre (3,), size)`` of a vertex set: its bounding-box centre and half its longest side
    (:class:`kptool.render.materials.RenderMesh` measures cameras the same way)."""
    v = np.asarray(vertices, dtype=np.float64)
    lo, hi = v.min(0), v.max(0)
    return (lo + hi) / 2, float((hi - lo).max() / 2)


def voxel_centres(resolution: int) -> np.ndarray:
    """``(R,)`` coordinates of the voxel centres along each axis of the canonical cube ``[-1, 1]``."""
    return -1 + (np.arange(resolution) + 0.5) * 2 / resolution


def voxelise(vertices: np.ndarray, faces: np.ndarray, resolution: int = 32,
             frame: tuple[np.ndarray, float] | None = None) -> np.ndarray:
    """Occupancy ``(R, R, R)`` bool (axes x, y, z) of a triangle mesh in its canonical frame.

    Args:
        vertices: ``(V, 3)`` in any frame; ``faces``: ``(F, 3)`` int.
        resolution: R, voxels along each side of the cube ``[-1, 1]^3``.
        frame: ``(centre, size)`` to normalise with; default :func:`canonical_frame` of the vertices.
    """
    import trimesh
    from trimesh.voxel.creation import voxelize_subdivide

    if resolution < 2:
        raise KptoolError(f"voxel resolution must be at least 2, got {resolution}")
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0 or f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise KptoolError(f"voxelise needs a triangle mesh, got vertices {v.shape} and faces {f.shape}")
    centre, size = frame if frame is not None else canonical_frame(v)
    if not size > 0:
        raise KptoolError("voxelise: the mesh is degenerate (its bounding box has no extent)")
    # grid index coordinates: voxel (i, j, k) is centred at the integer point (i, j, k)
    index = (v - centre) / size * (resolution / 2) + resolution / 2 - 0.5
    mesh = trimesh.Trimesh(index, f, process=False)
    # trimesh's own cap (log2 of the longest edge over half a voxel) is too low for slivers, whose
    # midpoint-to-corner edges shrink slower than the bisected edge; a few more rounds are cheap
    longest = float(np.linalg.norm(index[f[:, [1, 2, 0]]] - index[f], axis=2).max())
    rounds = max(int(np.ceil(np.log2(max(longest, 1.0) / 0.5))), 0) + 8
    grid = voxelize_subdivide(mesh, pitch=1.0, max_iter=rounds).fill()
    ijk = np.round(grid.points).astype(np.int64)
    ijk = ijk[((ijk >= 0) & (ijk < resolution)).all(1)]
    out = np.zeros((resolution,) * 3, dtype=bool)
    out[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = True
    return out


def _shape_job(root: str, rec: dict[str, Any], resolution: int, force: bool) -> dict[str, Any]:
    """Voxelise one shape and save its tables; never raises (the error is returned)."""
    shape_id = rec["id"]
    name = voxel_table(resolution)
    try:
        if not force and extra_path(root, name, shape_id).is_file() and extra_path(root, FRAME_TABLE,
                                                                                      shape_id).is_file():
            return {"id": shape_id, "written": False}
        shape, _ = load_prepared_shape(safe_join(root, rec["file"]), shape_id)
        if not shape.has_mesh:
            raise KptoolError(f"shape {shape_id} has no mesh to voxelise (prepared from a point cloud)")
        centre, size = canonical_frame(shape.vertices)
        occupancy = voxelise(shape.vertices, shape.faces, resolution, (centre, size))
        save_extra(root, FRAME_TABLE, shape_id, np.array([*centre, size], dtype=np.float64))
        save_extra(root, name, shape_id, occupancy.astype(np.uint8))
        return {"id": shape_id, "written": True, "occupied": float(occupancy.mean())}
    except (KptoolError, ValueError, RuntimeError, MemoryError, OSError, IndexError) as e:
        return {"id": shape_id, "error": str(e) if isinstance(e, KptoolError) else f"{e.__class__.__name__}: {e}"}


def add_voxels(root: str | os.PathLike, resolution: int = 32, workers: int = 1,
               progress: Callable[[int, int, str], None] | None = None, force: bool = False,
               strict: bool = False) -> dict[str, Any]:
    """Write the occupancy grid and canonical frame of every shape of the prepared dataset at ``root``.

    Resumable: shapes whose tables exist are skipped (``force`` recomputes them).
    Returns ``{"shapes", "computed", "skipped", "failed": [{"id", "error"}], "table", "mean_occupancy"}``.
    """
    if resolution not in RESOLUTIONS:
        raise KptoolError(f"--resolution must be one of {', '.join(map(str, RESOLUTIONS))}, got {resolution}")
    if workers < 1:
        raise KptoolError(f"workers must be at least 1, got {workers}")
    manifest = read_manifest(root)
    records = manifest["shapes"]
    name = voxel_table(resolution)
    summary: dict[str, Any] = {"shapes": len(records), "computed": 0, "skipped": 0, "table": name}
    failures = Failures(strict)
    summary["failed"] = failures.records
    occupied: list[float] = []
    jobs = [(os.fspath(root), rec, resolution, force) for rec in records]

    done = 0

    def record(result: dict[str, Any]) -> None:
        nonlocal done
        if "error" in result:
            failures.add(result["id"], f"shape {result['id']}", result["error"])
        else:
            summary["computed" if result["written"] else "skipped"] += 1
            if "occupied" in result:
                occupied.append(result["occupied"])
        done += 1
        if progress is not None:
            progress(done, len(records), result["id"])

    try:
        run_jobs(_shape_job, jobs, workers, record)
    finally:
        if summary["computed"] or summary["skipped"]:
            extras = manifest.setdefault("extras", {})
            extras[name] = {"shape": f"({resolution}, {resolution}, {resolution})", "dtype": "uint8",
                            "axes": "x, y, z", "frame": "canonical (see canonical-frame)",
                            "cube": [-1.0, 1.0], "method": "trimesh voxelize_subdivide + fill (holes)"}
            extras[FRAME_TABLE] = {"shape": "(4,)", "dtype": "float64",
                                   "columns": "bounding-box centre x, y, z and size (half the longest side)",
                                   "frame": "prepared"}
            write_manifest(root, manifest)
    summary["mean_occupancy"] = float(np.mean(occupied)) if occupied else None
    return summary
