"""Single-view reconstruction: images -> 2.5D sketches -> voxels -> mesh -> surface samples.

::

    from kptool.reconstruct import load_reconstructor
    rec = load_reconstructor("runs/sketch", "runs/voxels", device="cpu")
    results = rec(images)          # (B, S, S, 3) uint8 or (B, 3, S, S) float in [0, 1]
    results[0].points              # (2048, 3) canonical frame; results[0].mesh: trimesh.Trimesh

Everything 3D is in the canonical frame (:mod:`kptool.reconstruct.voxels`): origin at the
shape's bounding-box centre, unit = half its longest side. A ``kptool render`` camera at
azimuth ``az``, elevation ``el`` and distance ``D`` shape sizes sees it from
``eye = D (sin el sin az, cos el, sin el cos az)`` looking at the origin, +y up.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from kptool.errors import InputError, KptoolError
from kptool.models.reconstruction import SketchEstimator, VoxelEstimator
from kptool.reconstruct.surface import LEVEL, SAMPLES, surface_samples, voxels_to_mesh

STAGES = ("sketch", "voxels", "mesh")


@dataclass
class Reconstruction:
    """One image's reconstruction.

    Attributes:
        sketches: ``(5, s, s)`` float32: depth ``(z - d) / d``, normals (camera frame), silhouette probability.
        voxels: ``(R, R, R)`` float32 occupancy probabilities (axes x, y, z of the canonical cube).
        mesh: the marching-cubes surface (``trimesh.Trimesh``), or None when ``error`` is set.
        points: ``(samples, 3)`` float32 area-weighted surface samples, or None when ``error`` is set.
        error: why there is no mesh (an empty occupancy), else None.
    """

    sketches: np.ndarray
    voxels: np.ndarray
    mesh: Any = None
    points: np.ndarray | None = None
    error: str | None = None

    @property
    def silhouette(self) -> np.ndarray:
        """``(s, s)`` predicted silhouette probability."""
        return self.sketches[4]


def as_image_batch(images) -> torch.Tensor:
    """``(B, S, S, 3)`` uint8 (numpy or tensor) or ``(B, 3, S, S)`` float in [0, 1] -> float32 ``(B, 3, S, S)``."""
    # a copy: read-only arrays (memory-mapped renders) make torch warn
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.array(images))
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or (x.shape[1] != 3 and x.shape[-1] != 3):
        raise KptoolError(f"images must be (B, S, S, 3) uint8 or (B, 3, S, S) float, got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.float() / 255
    if x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    return x.float().contiguous()


@dataclass
class Reconstructor:
    """A trained sketch estimator and 3D estimator, run together (see the module docstring)."""

    sketch_model: SketchEstimator
    voxel_model: VoxelEstimator
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    level: float = LEVEL
    samples: int = SAMPLES
    seed: int = 0
    batch_size: int = 16
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def __post_init__(self):
        self.sketch_model.to(self.device).eval()
        self.voxel_model.to(self.device).eval()

    @property
    def resolution(self) -> int:
        return self.voxel_model.resolution

    @torch.no_grad()
    def predict(self, images) -> tuple[torch.Tensor, torch.Tensor]:
        """Images -> sketches ``(B, 5, s, s)`` and occupancy probabilities ``(B, R, R, R)`` (CPU tensors)."""
        x = as_image_batch(images)
        sketches, voxels = [], []
        for start in range(0, len(x), self.batch_size):
            chunk = x[start:start + self.batch_size].to(self.device)
            t0 = time.perf_counter()
            sk = self.sketch_model.predict({"image": chunk})["sketches"]
            t1 = time.perf_counter()
            vox = self.voxel_model.from_sketches(sk)
            t2 = time.perf_counter()
            self.seconds["sketch"] += t1 - t0
            self.seconds["voxels"] += t2 - t1
            sketches.append(sk.cpu())
            voxels.append(vox.cpu())
        return torch.cat(sketches), torch.cat(voxels)

    def __call__(self, images) -> list[Reconstruction]:
        """Reconstruct every image of a batch (:func:`as_image_batch` formats); see :class:`Reconstruction`."""
        sketches, voxels = self.predict(images)
        out = []
        for sk, vox in zip(sketches.numpy(), voxels.numpy()):
            t0 = time.perf_counter()
            try:
                mesh = voxels_to_mesh(vox, self.level)
                out.append(Reconstruction(sk, vox, mesh, surface_samples(mesh, self.samples, self.seed)))
            except KptoolError as e:
                out.append(Reconstruction(sk, vox, error=str(e)))
            self.seconds["mesh"] += time.perf_counter() - t0
        return out


def _load_model(path_or_run: str | os.PathLike, cls: type, what: str):
    from kptool.models import build_model
    from kptool.train.checkpoint import find_checkpoint, load_checkpoint

    path = find_checkpoint(path_or_run)
    ckpt = load_checkpoint(path)
    config = dict(ckpt["config"]["model"])
    if config.get("name") == "voxels-from-sketch":
        config["sketches"] = "rendered"     # which sketches it trained on does not matter for predicting
    try:
        model = build_model(config)
    except KptoolError as e:
        raise InputError(path, str(e)) from None
    if not isinstance(model, cls):
        raise InputError(path, f"not a {what} checkpoint (its model is {ckpt['config']['model'].get('name')!r}, "
                               f"expected {cls.model_name!r})")
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise InputError(path, f"weights do not fit its model ({str(e).splitlines()[0]})") from None
    return model


def load_sketch_estimator(sketch_checkpoint: str | os.PathLike) -> SketchEstimator:
    """A trained :class:`SketchEstimator` from a run folder (best.pt, else last.pt) or checkpoint file (on the CPU)."""
    return _load_model(sketch_checkpoint, SketchEstimator, "sketch-estimator")


def load_reconstructor(sketch_checkpoint: str | os.PathLike, voxel_checkpoint: str | os.PathLike,
                       device: str | torch.device = "auto", level: float = LEVEL, samples: int = SAMPLES,
                       seed: int = 0, batch_size: int = 16) -> Reconstructor:
    """A :class:`Reconstructor` from a ``sketch`` and a ``voxels-from-sketch`` run folder (best.pt, else
    last.pt) or checkpoint file. ``level``: marching-cubes level on probabilities; ``samples``: surface
    points per reconstruction (seeded by ``seed``)."""
    from kptool.device import resolve_device

    dev = device if isinstance(device, torch.device) else resolve_device(str(device))
    return Reconstructor(load_sketch_estimator(sketch_checkpoint),
                         _load_model(voxel_checkpoint, VoxelEstimator, "voxels-from-sketch"),
                         dev, level, samples, seed, batch_size)
