"""``kptool render``: a prepared dataset -> a rendered image dataset with ground truth.

Layout (docs/formats.md, "Rendered dataset")::

    RENDERS/
      manifest.json          # written last: present = complete
      failures.json          # [{id, error}]
      .kptool-render.json    # the dataset and options, used to resume
      rgb/<id>/<view>.png    # RGB images, view = 00, 01, ...
      views/<id>.npz         # silhouettes, depth, normals, cameras, projected keypoints

Resumable and parallel like ``kptool prepare`` (same mechanisms): a shape is done
when its ``views/<id>.npz`` exists (written atomically after its PNGs).
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kptool.data import prepared
from kptool.data.prepare import Tally, check_output, run_jobs, software_versions
from kptool.io.shapes import MESH_SUFFIXES
from kptool.errors import InputError, KptoolError
from kptool.io.atomic import atomic_path, safe_join, write_text
from kptool.render.camera import ViewSampling
from kptool.render.materials import RenderMesh, from_arrays, load_textured
from kptool.render.views import BACKGROUNDS, View, render_views

FORMAT = "kptool-renders"
VERSION = 1
STATE = ".kptool-render.json"
COLOURS = ("auto", "parts")
RENDERER = "kptool-raster"          # kptool.render.raster (see docs/render.md for the choice)


@dataclass
class RenderOptions:
    """What decides the renders; a re-run must give the same to resume."""

    sampling: ViewSampling = field(default_factory=ViewSampling)
    background: str = "white"
    colours: str = "auto"           # auto: the mesh file's materials when it has them, else parts
    seed: int = 0
    split: str = "all"

    def validate(self) -> None:
        s = self.sampling
        if s.views < 1:
            raise KptoolError("--views must be at least 1")
        if not 8 <= s.size <= 4096:
            raise KptoolError(f"--size must be between 8 and 4096 pixels, got {s.size}")
        lo, hi = s.elevation
        if not 0 <= lo <= hi <= 180:
            raise KptoolError(f"--elevation must be two polar angles 0 <= MIN <= MAX <= 180 (degrees), got {lo},{hi}")
        if not 0 < s.distance[0] <= s.distance[1]:
            raise KptoolError(f"--distance must be 0 < MIN <= MAX (shape sizes), got {s.distance[0]},{s.distance[1]}")
        if not 1 <= s.fov < 180:
            raise KptoolError(f"--fov must be in [1, 180) degrees, got {s.fov}")
        if self.background not in BACKGROUNDS:
            raise KptoolError(f"unknown --background {self.background!r} (expected one of {', '.join(BACKGROUNDS)})")
        if self.colours not in COLOURS:
            raise KptoolError(f"unknown --colors {self.colours!r} (expected one of {', '.join(COLOURS)})")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["sampling"]["elevation"] = list(self.sampling.elevation)
        d["sampling"]["distance"] = list(self.sampling.distance)
        return d


def view_file(shape_id: str) -> str:
    return f"views/{shape_id}.npz"


def rgb_file(shape_id: str, view: int) -> str:
    return f"rgb/{shape_id}/{view:02d}.png"


def mesh_of(shape, colours: str) -> RenderMesh:
    """The mesh to render: the original file with its materials when the prepared dataset
    names one that still exists (``meta.mesh``; ``meta.source`` for datasets prepared before
    it was recorded), mapped into the prepared frame; else the stored mesh coloured by part."""
    if colours == "auto":
        path = shape.meta.get("mesh") or shape.meta.get("source")
        if path and Path(path).suffix.lower() in (".ply", *MESH_SUFFIXES) and Path(path).is_file():
            textured = load_textured(path, shape.meta["transform"])
            if textured.colour_source == "materials" or shape.face_labels is None:
                return textured
    if not shape.has_mesh:
        raise InputError(None, f"shape {shape.id} has no mesh to render (prepared from a point cloud)")
    return from_arrays(shape.vertices, shape.faces, shape.face_labels)


def shape_rng(seed: int, shape_id: str) -> np.random.Generator:
    """Cameras and backgrounds of a shape depend only on the seed and its id (not on workers)."""
    return np.random.default_rng([seed, zlib.crc32(shape_id.encode("utf-8"))])


def views_to_arrays(views: list[View], keypoints: np.ndarray | None, keypoint_ids: np.ndarray | None) -> dict:
    """The arrays of ``views/<id>.npz`` (see docs/formats.md)."""
    cams = [v.camera for v in views]
    extr = [c.extrinsics() for c in cams]
    colours = np.array([v.background.get("colors", [[1.0] * 3] * 2 if v.background["kind"] == "white"
                                         else [[0.0] * 3] * 2) for v in views], dtype=np.float32)
    k = 0 if keypoints is None else len(keypoints)
    return {
        "silhouette": np.stack([v.silhouette for v in views]),
        "depth": np.stack([v.depth for v in views]).astype(np.float32),
        "normals": np.stack([v.normals for v in views]).astype(np.float16),
        "K": cams[0].intrinsics(), "R": np.stack([e[0] for e in extr]), "t": np.stack([e[1] for e in extr]),
        "azimuth": np.array([c.azimuth for c in cams]), "elevation": np.array([c.elevation for c in cams]),
        "distance": np.array([c.distance for c in cams]), "target": np.asarray(cams[0].target, dtype=np.float64),
        "fov": np.float64(cams[0].fov),
        "background_colors": colours, "background_angle": np.array([v.background.get("angle", 0.0) for v in views]),
        "keypoints": np.zeros((0, 3), np.float32) if keypoints is None else np.asarray(keypoints, np.float32),
        "keypoint_ids": np.zeros(k, np.int64) if keypoint_ids is None else np.asarray(keypoint_ids, np.int64),
        "keypoints_2d": np.stack([v.keypoints_2d for v in views]).reshape(len(views), k, 2),
        "keypoint_depth": np.stack([v.keypoint_depth for v in views]).reshape(len(views), k),
        "keypoint_visible": np.stack([v.keypoint_visible for v in views]).reshape(len(views), k),
    }


def _render_one(dataset_root: str, index: int, options: RenderOptions, out: str) -> dict[str, Any]:
    """Worker: render one shape of the dataset; returns its manifest record or a failure."""
    from PIL import Image

    ds = prepared.PreparedDataset(dataset_root)
    shape_id = ds.records[index]["id"]
    try:
        shape = ds[index]
        mesh = mesh_of(shape, options.colours)
        rng = shape_rng(options.seed, shape_id)
        cameras = options.sampling.sample(rng, mesh.centre, mesh.size)
        views = render_views(mesh, cameras, shape.keypoints, options.background, rng)
        for i, v in enumerate(views):
            with atomic_path(safe_join(out, rgb_file(shape_id, i))) as tmp:
                Image.fromarray(v.rgb).save(tmp, format="PNG")
        arrays = views_to_arrays(views, shape.keypoints, shape.keypoint_ids)
        arrays["colour_source"] = np.array(mesh.colour_source)
        with atomic_path(safe_join(out, view_file(shape_id))) as tmp:
            np.savez_compressed(tmp, **arrays)
        return {"ok": True, "record": _record(ds.records[index], arrays)}
    except KptoolError as e:
        return {"ok": False, "id": shape_id, "error": str(e)}
    except Exception as e:  # a reader we don't control broke on this mesh: record it, go on
        return {"ok": False, "id": shape_id, "error": f"{e.__class__.__name__}: {e}"}


def _record(rec: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    colour_source = str(arrays["colour_source"])
    return {"id": rec["id"], "split": rec["split"], "file": view_file(rec["id"]),
            "views": int(len(arrays["azimuth"])), "num_keypoints": int(len(arrays["keypoints"])),
            "colour_source": colour_source, "mesh": rec.get("meta", {}).get("mesh")}


def _existing_record(out: Path, rec: dict[str, Any], views: int) -> dict[str, Any] | None:
    path = safe_join(out, view_file(rec["id"]))
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("azimuth", "keypoints", "colour_source")}
    except (OSError, ValueError, EOFError, KeyError):
        return None  # unreadable leftovers are redone
    if len(arrays["azimuth"]) != views:
        return None
    return _record(rec, arrays)


@dataclass
class RenderSummary:
    out: str
    total: int
    rendered: int
    skipped: int
    failed: list[dict[str, str]]
    images: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_render(dataset: str | Path, out: str | Path, options: RenderOptions, workers: int = 1, strict: bool = False,
               force: bool = False, progress: Callable[[int, int, str], None] | None = None) -> RenderSummary:
    """Render every shape of a prepared dataset (split ``options.split``) into ``out``."""
    options.validate()
    start = time.perf_counter()
    dataset, out = Path(dataset).resolve(), Path(out)
    ds = prepared.PreparedDataset(dataset)
    chosen = [i for i, r in enumerate(ds.records) if options.split == "all" or r["split"] == options.split]
    if not chosen:
        raise KptoolError(f"{dataset}: no shapes in split {options.split!r}")
    state = {"format": FORMAT, "dataset": str(dataset), "options": options.to_json()}
    resuming = check_output(out, state, force, STATE, owned=("rgb", "views", prepared.MANIFEST, prepared.FAILURES))
    out.mkdir(parents=True, exist_ok=True)
    if not resuming:
        write_text(out / STATE, json.dumps(state, sort_keys=True))
    (out / prepared.MANIFEST).unlink(missing_ok=True)

    records: dict[str, dict[str, Any]] = {}
    todo = []
    for i in chosen:
        rec = _existing_record(out, ds.records[i], options.sampling.views) if resuming else None
        if rec is not None:
            records[rec["id"]] = rec
        else:
            todo.append(i)
    tally = Tally(len(chosen), records, progress, strict)
    skipped, failures = tally.skipped, tally.failures
    run_jobs(_render_one, [(str(dataset), i, options, str(out)) for i in todo], workers, tally)
    ordered = [records[r["id"]] for r in (ds.records[i] for i in chosen) if r["id"] in records]
    failures.write(out / prepared.FAILURES)
    manifest = {
        "format": FORMAT, "version": VERSION, "dataset": str(dataset), "category": ds.category,
        "options": options.to_json(), "renderer": RENDERER,
        "camera": {"convention": "eye = target + d (sin el sin az, cos el, sin el cos az), look-at target, +y up; "
                                 "OpenCV camera frame and pixel centres", "frame": "prepared"},
        "counts": {**{s: sum(r["split"] == s for r in ordered) for s in prepared.SPLITS},
                   "total": len(ordered), "failed": len(failures),
                   "images": sum(r["views"] for r in ordered)},
        "keypoint_ids": ds.manifest.get("keypoint_ids", []),
        **{k: ds.manifest[k] for k in ("keypoint_names", "part_names") if k in ds.manifest},
        "shapes": ordered, "failures": failures.records, "software": software_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with atomic_path(out / prepared.MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    n_new = len(ordered) - skipped
    return RenderSummary(str(out), len(chosen), n_new, skipped, failures.records, sum(r["views"] for r in ordered),
                         round(time.perf_counter() - start, 2))


def read_views(root: str | Path, shape_id: str) -> dict[str, np.ndarray]:
    """The arrays of one rendered shape (``views/<id>.npz``)."""
    path = safe_join(root, view_file(shape_id))
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise InputError(path, f"unreadable rendered views ({e})") from None

