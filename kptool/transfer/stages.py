"""The stages of 2D-3D-2D keypoint transfer, each behind a small interface.

- shape: image -> :class:`ShapeEstimate` (a mesh and surface samples in the canonical,
  prepared frame; optionally a predicted silhouette to refine the camera against);
- viewpoint: image and shape -> initial :class:`~kptool.render.camera.Camera`;
- semantic model: image -> the embedding database keypoints are looked up in (``None``:
  the embedding model's own database, the mean over its annotated training shapes).

Every stage has a learned implementation and a ground-truth one read from a rendered
dataset (:class:`RenderTruth`), so that the stage analysis (paper 004, Table 3) swaps
them one at a time.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from kptool.errors import InputError, KptoolError
from kptool.render.camera import Camera
from kptool.render.materials import BoundingBoxOfVertices, shape_size
from kptool.transfer.inputs import TransferInput

DEFAULT_DISTANCE = 2.08   # shape sizes: the renders' default (the reference code's 1.04 in a unit cube)
MARCHING_CUBES_LEVEL = 0.1   # occupancy probability of the surface: the reference code's (ShapeHD)


@dataclass
class ShapeEstimate(BoundingBoxOfVertices):
    """A shape in the canonical (prepared) frame.

    Attributes:
        vertices: ``(V, 3)`` float64, faces: ``(F, 3)`` int64: the surface (depth test, silhouettes).
        samples: ``(N, 3)`` float32 surface samples (keypoints are placed on them).
        silhouette: ``(S, S)`` float in [0, 1], a predicted silhouette of the input, or None.
    """

    vertices: np.ndarray
    faces: np.ndarray
    samples: np.ndarray
    silhouette: np.ndarray | None = None


class ShapeStage(Protocol):
    name: str

    def __call__(self, inp: TransferInput) -> ShapeEstimate: ...


class ViewpointStage(Protocol):
    name: str
    refine: bool            # whether the pipeline refines its camera against the silhouette

    def __call__(self, inp: TransferInput, shape: ShapeEstimate, size: int) -> Camera: ...


class DatabaseStage(Protocol):
    name: str

    def __call__(self, inp: TransferInput, model) -> tuple[np.ndarray, np.ndarray] | None: ...


def default_camera(shape: ShapeEstimate, azimuth: float, elevation: float, size: int,
                   distance: float = DEFAULT_DISTANCE, fov: float = math.pi / 2) -> Camera:
    """A camera at ``distance`` shape sizes from the shape's box centre, as ``kptool render`` places them."""
    return Camera(float(azimuth) % (2 * math.pi), float(elevation), distance * shape.size,
                  tuple(float(x) for x in shape.centre), fov, size)


# ---------------------------------------------------------------------------------------------- keypoints in 3D

class EmbeddingKeypoints:
    """Keypoints in 3D by embedding nearest neighbour (a trained ``dense-embedding`` model).

    Database entry i (a semantic id and its mean embedding) becomes keypoint i: the sample
    whose embedding is nearest (docs/embeddings.md).
    """

    def __init__(self, checkpoint: str | os.PathLike, device: str | torch.device = "cpu"):
        from kptool.detect.learned import load_detector

        detector = load_detector(checkpoint, device)
        if not hasattr(detector.model, "embed"):
            raise InputError(checkpoint, f"{detector.name} is no embedding model (train one with an embed-* preset)")
        if detector.num_keypoints == 0:
            raise InputError(checkpoint, "its embedding database is empty: build one with kptool embed-db")
        self.model, self.device, self.name = detector.model, detector.device, detector.name
        self.category = detector.category
        self.normalize = detector.normalize

    @torch.no_grad()
    def embed(self, points: np.ndarray) -> np.ndarray:
        """``(N, 3)`` points in any position and scale -> ``(N, D)`` float32 embeddings.

        The points are brought into the model's training frame first (:func:`detection_frame`:
        a reconstruction's canonical frame is not the prepared frame the model learned in).
        """
        from kptool.core.transform import detection_frame

        p = np.asarray(points, dtype=np.float64)
        pts = torch.as_tensor(detection_frame(p, self.normalize).apply(p).astype(np.float32), device=self.device)[None]
        return self.model.embed(pts)[0].float().cpu().numpy()

    @property
    def database(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids (S,), means (S, D))`` stored with the checkpoint."""
        return self.model.database_ids.cpu().numpy(), self.model.database.float().cpu().numpy()

    def keypoints(self, samples: np.ndarray, database: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """``(S, 3)`` keypoints on ``samples`` ``(N, 3)`` and their ``(S,)`` semantic ids."""
        ids, means = self.database if database is None else database
        emb = self.embed(samples)
        d = ((means[:, None, :] - emb[None, :, :]) ** 2).sum(-1)     # (S, N)
        return np.asarray(samples, dtype=np.float64)[d.argmin(1)], np.asarray(ids, dtype=np.int64)

    def database_of(self, points: np.ndarray, keypoint_ids: np.ndarray, point_index: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """The database of one annotated shape: per id, the mean embedding of its annotated points."""
        emb = self.embed(points)
        keep = np.asarray(point_index) >= 0
        ids, idx = np.asarray(keypoint_ids)[keep], np.asarray(point_index)[keep]
        uniq = np.unique(ids)
        return uniq, np.stack([emb[idx[ids == i]].mean(0) for i in uniq]) if len(uniq) else np.zeros((0, emb.shape[1]))


class ModelDatabase:
    """The semantic model of the pipeline: the database stored with the embedding model."""

    name = "database"

    def __call__(self, inp: TransferInput, model: EmbeddingKeypoints):
        return None


# ---------------------------------------------------------------------------------------------- viewpoints

class SilhouetteSearch:
    """A viewpoint without a network: the azimuth and elevation on a grid whose hard silhouette
    of the shape best overlaps the target silhouette (IoU); refined afterwards like any other.

    A front and back view of a symmetric object have the same silhouette, so this confuses
    them; it is the fallback when no viewpoint model is given.
    """

    name = "silhouette-search"
    refine = True

    def __init__(self, azimuths: int = 24, elevations: tuple[float, ...] = (50, 65, 80, 95), size: int = 48):
        self.azimuths = azimuths
        self.elevations = tuple(math.radians(e) for e in elevations)
        self.search_size = size

    def __call__(self, inp: TransferInput, shape: ShapeEstimate, size: int) -> Camera:
        from kptool.render.raster import rasterize
        from kptool.render.refine import silhouette_iou
        from kptool.transfer.inputs import resize_input

        goal = resize_input(inp, self.search_size).mask
        best, best_iou = None, -1.0
        for el in self.elevations:
            for k in range(self.azimuths):
                cam = default_camera(shape, 2 * math.pi * k / self.azimuths, el, self.search_size)
                iou = silhouette_iou(rasterize(shape.vertices, shape.faces, cam).mask, goal)
                if iou > best_iou:
                    best, best_iou = cam, iou
        return default_camera(shape, best.azimuth, best.elevation, size)


class LearnedViewpoint:
    """Azimuth and elevation from RGB (a ``viewpoint-resnet18`` run), at the default distance; refined."""

    name = "viewpoint-network"
    refine = True

    def __init__(self, checkpoint: str | os.PathLike, device: str | torch.device = "cpu"):
        from kptool.viewpoint import load_viewpoint_predictor

        self.predictor = load_viewpoint_predictor(checkpoint, device)
        self.name = f"viewpoint:{self.predictor.config.get('name') or 'viewpoint'}"

    def __call__(self, inp: TransferInput, shape: ShapeEstimate, size: int) -> Camera:
        az, el = self.predictor.predict(inp.rgb[None])
        return default_camera(shape, az[0], el[0], size)


# ---------------------------------------------------------------------------------------------- shapes

class LearnedShape:
    """Single-view reconstruction: 2.5D sketches -> voxels -> marching cubes -> surface samples
    (:mod:`kptool.reconstruct`); the predicted silhouette is what the camera is refined against."""

    name = "reconstruction"

    def __init__(self, sketch: str | os.PathLike, voxels: str | os.PathLike, device: str | torch.device = "cpu",
                 level: float = MARCHING_CUBES_LEVEL):
        from kptool.reconstruct.pipeline import load_reconstructor

        self.reconstructor = load_reconstructor(sketch, voxels, device, level=level)

    def __call__(self, inp: TransferInput) -> ShapeEstimate:
        rec = self.reconstructor(inp.rgb[None])[0]
        if rec.error is not None:
            raise KptoolError(f"reconstruction failed: {rec.error}")
        return ShapeEstimate(np.asarray(rec.mesh.vertices, np.float64), np.asarray(rec.mesh.faces, np.int64),
                             np.asarray(rec.points, np.float32), np.asarray(rec.silhouette, np.float32))


# ---------------------------------------------------------------------------------------------- ground truth

class RenderTruth:
    """Ground truth of the images of a rendered dataset: shapes (from its prepared dataset) and cameras."""

    def __init__(self, renders: str | os.PathLike):
        from kptool.data.prepared import PreparedDataset
        from kptool.render.images import read_render_manifest

        self.root = Path(renders)
        self.manifest = read_render_manifest(self.root)
        self.dataset = PreparedDataset(self.manifest["dataset"])
        self._views: dict[str, dict[str, np.ndarray]] = {}

    def split(self, name: str) -> tuple[str, int]:
        shape_id, _, view = name.rpartition("/")
        if not shape_id or not view.isdigit():
            raise KptoolError(f"{name!r} is not an image of the renders {self.root} (<shape id>/<view>)")
        return shape_id, int(view)

    def views(self, shape_id: str) -> dict[str, np.ndarray]:
        from kptool.render.dataset import read_views

        if shape_id not in self._views:
            self._views = {shape_id: read_views(self.root, shape_id)}    # one shape at a time: images come in order
        return self._views[shape_id]

    def shape(self, name: str):
        shape_id, _ = self.split(name)
        return self.dataset[self.dataset.index_of(shape_id)]

    def camera(self, name: str, size: int) -> Camera:
        shape_id, view = self.split(name)
        z = self.views(shape_id)
        return Camera(float(z["azimuth"][view]), float(z["elevation"][view]), float(z["distance"][view]),
                      tuple(float(x) for x in z["target"]), float(z["fov"]), size)

    def image_names(self, split: str | None = None) -> list[str]:
        return [f"{r['id']}/{v:02d}" for r in self.manifest["shapes"]
                if split in (None, "all") or r["split"] == split for v in range(r["views"])]


class TrueShape:
    """The true mesh and its prepared samples (the shape the image was rendered from)."""

    name = "true-shape"

    def __init__(self, truth: RenderTruth):
        self.truth = truth

    def __call__(self, inp: TransferInput) -> ShapeEstimate:
        shape = self.truth.shape(inp.name)
        if not shape.has_mesh:
            raise KptoolError(f"shape {shape.id} has no mesh")
        return ShapeEstimate(np.asarray(shape.vertices, np.float64), np.asarray(shape.faces, np.int64),
                             np.asarray(shape.points, np.float32))


class TrueViewpoint:
    """The camera the image was rendered with (not refined): its azimuth, elevation and distance in
    shape sizes, looking at the shape estimate's box centre (the true camera itself on the true shape)."""

    name = "true-viewpoint"
    refine = False

    def __init__(self, truth: RenderTruth):
        self.truth = truth

    def __call__(self, inp: TransferInput, shape: ShapeEstimate, size: int) -> Camera:
        true = self.truth.camera(inp.name, size)
        true_size = shape_size(self.truth.shape(inp.name).vertices)
        return default_camera(shape, true.azimuth, true.elevation, size, true.distance / true_size, true.fov)


class TrueDatabase:
    """The semantic model replaced by the true shape: the database of its own annotated points."""

    name = "true-semantic-model"

    def __init__(self, truth: RenderTruth):
        self.truth = truth

    def __call__(self, inp: TransferInput, model: EmbeddingKeypoints):
        shape = self.truth.shape(inp.name)
        return model.database_of(shape.points, shape.keypoint_ids, shape.keypoint_point_index)
