"""2D-3D-2D keypoint transfer of one image (paper 004).

shape (reconstruction) -> viewpoint (refined by matching the shape's soft silhouette to
the predicted or given silhouette) -> keypoints in 3D (embedding nearest neighbour on the
shape's samples) -> projection into the image, visible where the depth test against the
shape's own surface passes (the rule ``kptool render`` uses for ground truth).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from kptool.render.camera import Camera, project_np
from kptool.render.refine import PARAMS
from kptool.transfer.inputs import TransferInput, resize_input, scale_pixels
from kptool.transfer.stages import (DatabaseStage, EmbeddingKeypoints, ModelDatabase, ShapeEstimate, ShapeStage,
                                    ViewpointStage)

STAGES = ("shape", "viewpoint", "refine", "keypoints", "projection")


@dataclass
class TransferOptions:
    """How one image is processed.

    Attributes:
        size: working resolution (pixels): the input is resized to it; the camera and depth test use it.
        refine_size: resolution of the silhouette matching (soft rasterisation is the costly part).
        refine_steps, refine_lr, refine_params, sigma: Adam steps on the camera (docs/render.md).
    """

    size: int = 128
    refine_size: int = 64
    refine_steps: int = 30
    refine_lr: float = 0.01
    refine_params: tuple[str, ...] = PARAMS
    sigma: float = 0.1
    device: str = "cpu"


@dataclass
class Stages:
    shape: ShapeStage
    viewpoint: ViewpointStage
    keypoints: EmbeddingKeypoints
    database: DatabaseStage = field(default_factory=ModelDatabase)

    def describe(self) -> dict[str, str]:
        return {"shape": self.shape.name, "viewpoint": self.viewpoint.name, "keypoints": self.keypoints.name,
                "semantic_model": self.database.name}


@dataclass
class ImageKeypoints:
    """One image's 2D keypoints.

    Attributes:
        uv: ``(S, 2)`` pixel coordinates in the input image; ids: ``(S,)`` semantic ids;
        visible: ``(S,)`` bool. seconds: per stage.
    """

    name: str
    uv: np.ndarray
    ids: np.ndarray
    visible: np.ndarray
    seconds: dict[str, float]


@dataclass
class TransferResult(ImageKeypoints):
    """One image's keypoints through 3D.

    Attributes:
        keypoints: ``(S, 3)`` in the shape's frame.
        camera: the refined camera (working size); initial: before refinement.
        iou: silhouette IoU of the shape against the target before and after refinement.
        seconds: per stage (:data:`STAGES`).
    """

    keypoints: np.ndarray
    shape: ShapeEstimate
    initial: Camera
    camera: Camera
    iou: tuple[float, float] | None
    target: np.ndarray          # (size, size) the silhouette the camera was refined against


def refine_target(inp: TransferInput, shape: ShapeEstimate) -> np.ndarray:
    """The silhouette to match: the shape stage's predicted one, else the input's mask (working size)."""
    if shape.silhouette is not None:
        sil = np.asarray(shape.silhouette, dtype=np.float32)
        if sil.shape == inp.mask.shape:
            return sil
        return resize_input(TransferInput(inp.name, inp.rgb, sil > 0.5), inp.size).mask.astype(np.float32)
    return inp.mask.astype(np.float32)


def transfer_image(inp: TransferInput, stages: Stages, options: TransferOptions = TransferOptions()) -> TransferResult:
    """Keypoints of one image (any square size; results in its own pixel coordinates)."""
    from dataclasses import replace

    from kptool.render.raster import rasterize
    from kptool.render.refine import refine_camera
    from kptool.render.views import VISIBILITY_TOLERANCE, keypoint_visibility

    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = now - clock
        clock = now

    work = resize_input(inp, options.size)
    shape = stages.shape(work)
    lap("shape")
    initial = stages.viewpoint(work, shape, options.size)
    lap("viewpoint")
    target = refine_target(work, shape)
    camera, iou = initial, None
    if stages.viewpoint.refine and options.refine_steps > 0:
        small = resize_input(TransferInput(work.name, work.rgb, target > 0.5), options.refine_size).mask
        result = refine_camera(shape.vertices, shape.faces, small, replace(initial, size=options.refine_size),
                               options.refine_steps, options.refine_lr, tuple(options.refine_params), options.sigma,
                               options.device)
        camera, iou = replace(result.camera, size=options.size), (result.iou_before, result.iou_after)
    lap("refine")
    keypoints, ids = stages.keypoints.keypoints(shape.samples, stages.database(work, stages.keypoints))
    lap("keypoints")
    uvz = project_np(keypoints, camera)
    depth = rasterize(shape.vertices, shape.faces, camera).depth
    visible = keypoint_visibility(uvz, depth, VISIBILITY_TOLERANCE * shape.size)
    uv = scale_pixels(uvz[:, :2], options.size, inp.size)
    lap("projection")
    return TransferResult(inp.name, uv, ids, visible, seconds, keypoints, shape, initial, camera, iou, target)


class Pipeline:
    """The 2D-3D-2D method: :func:`transfer_image` with fixed stages and options."""

    stages_run = STAGES

    def __init__(self, stages: Stages, options: TransferOptions = TransferOptions()):
        self.stages, self.options = stages, options

    def describe(self) -> dict:
        return {"method": "2d-3d-2d", **self.stages.describe(), "options": asdict(self.options)}

    def __call__(self, inp: TransferInput) -> TransferResult:
        return transfer_image(inp, self.stages, self.options)
