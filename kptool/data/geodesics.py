"""Add geodesic distance tables to a prepared dataset (``kptool prepare geodesics``).

For every shape, ``extras/geodesic_keypoints/<id>.npy`` holds the ``(K, N)``
float32 distances from each keypoint to each sampled point, and with
``all_pairs`` ``extras/geodesic_points/<id>.npy`` the ``(N, N)`` float32 distances
among the sampled points. They are measured on the shape's mesh when it has one
(see :func:`kptool.geodesic.distances_to_points`), else on the cloud, in the
prepared frame: divide by ``shape.meta["transform"].scale`` for the original
frame. ``inf`` marks unreachable pairs (another connected part).

When shapes carry keypoint ids (correspondence sets), the per-category table of mean
geodesic distances between sets is computed from the train split's keypoint tables
and stored per shape as ``extras/set_distances/<id>.npy`` (see
:mod:`kptool.data.correspondences`); the manifest's ``extras.set_distances`` holds the
whole table and how it was made.

Method ``auto`` measures on the mesh (heat method) where a shape has one and on the
20-NN graph of the sampled points otherwise (KeypointNet's benchmark geodesics); the
manifest counts which surface each table used.

float32 rather than float16: an ``(N, N)`` table for 2048 points is 16 MiB per
shape, and float16's 11-bit mantissa would put steps of ~0.002 on distances near
2 (the prepared frame's scale), a fifth of KeypointNet's finest threshold.

Files are written atomically and shapes whose table exists are skipped, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable

import numpy as np

from kptool.errors import KptoolError
from kptool.failures import Failures
from kptool.data.correspondences import SET_TABLE, set_distance_table
from kptool.geodesic import METHODS, UnreachableWarning, distances_to_points
from kptool.geodesic.cloud import KNN
from kptool.data.prepared import extra_path, load_prepared_shape, read_manifest, save_extra, write_manifest
from kptool.io.atomic import safe_join
from kptool.workers import worker_pool

KEYPOINT_TABLE = "geodesic_keypoints"
POINTS_TABLE = "geodesic_points"
TABLE_METHODS = (*METHODS, "auto")


def add_geodesics(root: str | os.PathLike, method: str = "heat", all_pairs: bool = False, workers: int = 1,
                  progress: Callable[[int, int, str], None] | None = None, force: bool = False,
                  strict: bool = False) -> dict[str, Any]:
    """Compute geodesic tables for every shape of the prepared dataset at ``root``.

    Args:
        root: a folder written by ``kptool prepare``.
        method: ``"heat"`` (mesh or cloud), ``"exact"`` (meshes only; bare clouds
            then fail), ``"graph"`` (20-NN graph on the sampled points, even for meshes)
            or ``"auto"`` (heat on a mesh, the 20-NN graph on a bare cloud).
        all_pairs: also write the ``(N, N)`` table among sampled points.
        workers: processes to use (1 = this process).
        progress: called as ``progress(done, total, status)`` after every shape.
        force: recompute tables that already exist.
        strict: raise on the first shape that fails instead of recording it.

    Returns:
        ``{"shapes", "computed", "skipped", "failed": [{"id", "error"}], "unreachable": [ids], "tables": [...],
        "surfaces": {"mesh": n, "cloud": n}}`` and, with correspondence sets, ``"set_distances"``
        (the manifest's description of the table).
    """
    if method not in TABLE_METHODS:
        raise KptoolError(f"unknown geodesic method {method!r}: expected one of {', '.join(TABLE_METHODS)}")
    if workers < 1:
        raise KptoolError(f"workers must be at least 1, got {workers}")
    manifest = read_manifest(root)
    tables = [KEYPOINT_TABLE] + ([POINTS_TABLE] if all_pairs else [])
    extras = manifest.setdefault("extras", {})
    for name in tables:
        if name in extras and extras[name].get("method") != method and not force:
            raise KptoolError(f"{root}: its {name} tables were computed with method {extras[name].get('method')!r}; "
                              f"use --force to recompute them all with {method!r}")

    records = manifest["shapes"]
    summary: dict[str, Any] = {"shapes": len(records), "computed": 0, "skipped": 0, "failed": [],
                               "unreachable": [], "tables": tables, "surfaces": {"mesh": 0, "cloud": 0}}
    jobs = [(os.fspath(root), rec, method, all_pairs, force) for rec in records]
    failures = Failures(strict)
    summary["failed"] = failures.records
    rec_of = {rec["id"]: rec for rec in records}

    def record(i: int, result: dict[str, Any]) -> None:
        if "error" in result:
            failures.add(result["id"], f"shape {result['id']}", result["error"])
            status = f"{result['id']} failed"
        else:
            summary["computed" if result["written"] else "skipped"] += 1
            summary["surfaces"][_surface(rec_of[result["id"]], method)] += 1
            if result["unreachable"]:
                summary["unreachable"].append(result["id"])
            status = result["id"]
        if progress is not None:
            progress(i + 1, len(records), status)

    try:
        if workers == 1:
            for i, job in enumerate(jobs):
                record(i, _shape_job(*job))
        else:
            with worker_pool(workers) as pool:
                for i, result in enumerate(pool.map(_shape_job, *zip(*jobs))):
                    record(i, result)
    finally:
        # Whatever got written is described, so a resumed or partial run reads correctly.
        if summary["computed"] or summary["skipped"]:
            described = {"method": method, "frame": "prepared", "dtype": "float32", "unreachable": "inf",
                         "surface": {"graph": "sampled points (k-NN graph)",
                                     "auto": "mesh (heat) when the shape has one, else the sampled points "
                                             "(k-NN graph)"}.get(method, "mesh when the shape has one, "
                                                                         "else the sampled points"),
                         "surfaces": dict(summary["surfaces"]),
                         "k": KNN}  # neighbours of the k-NN graph, used wherever distances are on the cloud
            if method in ("heat", "auto"):
                described["mesh_discretisation"] = "intrinsic Delaunay refinement (kptool.geodesic.intrinsic)"
            if all_pairs:
                extras[POINTS_TABLE] = {**described, "shape": "(N, N)", "rows": "sampled points",
                                        "columns": "sampled points"}
            if any(r.get("num_keypoints", 0) > 0 for r in records):
                extras[KEYPOINT_TABLE] = {**described, "shape": "(K, N)", "rows": "keypoints",
                                          "columns": "sampled points"}
            write_manifest(root, manifest)
    if KEYPOINT_TABLE in extras and not summary["failed"]:
        table = add_set_distances(root, manifest)
        if table is not None:
            summary["set_distances"] = table
    return summary


def _surface(rec: dict[str, Any], method: str) -> str:
    return "mesh" if rec.get("has_mesh", False) and method != "graph" else "cloud"


def add_set_distances(root: str | os.PathLike, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """Compute D(C_i, C_j) on the train split and write every shape's rows; None without sets.

    Uses the train split's shapes (all shapes when it has fewer than two annotated ones),
    so that nothing about validation or test shapes reaches the training targets.
    """
    records = [r for r in manifest["shapes"] if r.get("num_keypoints", 0) > 0 and r.get("keypoint_ids")]
    basis = [r for r in records if r["split"] == "train"]
    used = "train" if len(basis) >= 2 else "all"
    basis = basis if used == "train" else records
    if len(basis) < 2:
        return None
    ids, index, tables = [], [], []
    for rec in basis:
        with np.load(safe_join(root, rec["file"]), allow_pickle=False) as z:
            ids.append(z["keypoint_ids"])
            index.append(z["keypoint_point_index"])
        tables.append(np.load(extra_path(root, KEYPOINT_TABLE, rec["id"]), allow_pickle=False))
    table = set_distance_table(ids, index, tables)
    size = max(max(r["keypoint_ids"]) for r in records) + 1   # one column per id of any split
    for rec in records:
        save_extra(root, SET_TABLE, rec["id"], table.rows_for(rec["keypoint_ids"], size))
    described = {"shape": "(K, I)", "rows": "keypoints", "columns": "set ids (keypoint_ids)", "dtype": "float32",
                 "from": KEYPOINT_TABLE, "method": manifest["extras"][KEYPOINT_TABLE]["method"],
                 "computed_on": used, "shapes": len(basis), "ids": table.ids.tolist(),
                 "mean": [[None if not np.isfinite(v) else round(float(v), 6) for v in row] for row in table.mean],
                 "unreachable_pairs": table.unreachable,
                 "never_together": int(np.isnan(table.mean).sum() // 2), "missing": "NaN (no shape has both sets)"}
    manifest.setdefault("extras", {})[SET_TABLE] = described
    write_manifest(root, manifest)
    return described


def _shape_job(root: str, rec: dict[str, Any], method: str, all_pairs: bool, force: bool) -> dict[str, Any]:
    """Compute and save one shape's tables; never raises (the error is returned)."""
    shape_id = rec["id"]
    try:
        todo = []
        if rec.get("num_keypoints", 0) > 0:
            todo.append(KEYPOINT_TABLE)
        if all_pairs:
            todo.append(POINTS_TABLE)
        todo = [name for name in todo if force or not extra_path(root, name, shape_id).is_file()]
        if not todo:
            return {"id": shape_id, "written": False, "unreachable": False}
        shape, _ = load_prepared_shape(safe_join(root, rec["file"]), shape_id)
        unreachable = False
        for name in todo:
            sources = shape.keypoints if name == KEYPOINT_TABLE else np.arange(shape.num_points)
            if sources is None or len(sources) == 0:
                continue
            how = method if method != "auto" else ("heat" if shape.has_mesh else "graph")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UnreachableWarning)
                dist = distances_to_points(shape.points, sources, shape.vertices, shape.faces, method=how)
            unreachable |= bool(np.isinf(dist).any())
            save_extra(root, name, shape_id, dist.astype(np.float32))
        return {"id": shape_id, "written": True, "unreachable": unreachable}
    except (KptoolError, ValueError, RuntimeError, MemoryError, OSError) as e:
        return {"id": shape_id, "error": f"{e.__class__.__name__}: {e}" if not isinstance(e, KptoolError) else str(e)}
