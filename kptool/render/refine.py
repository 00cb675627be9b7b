"""Refine a camera so that a mesh's soft silhouette matches a target silhouette.

The paper fine-tunes the viewpoint (azimuth, elevation, distance) by gradient
descent on the silhouette difference; the authors' released code optimises only
the distance, as a scale on the eye position (Adam, lr 0.01, 30 steps, mean
squared difference). Both are here: ``params=("distance",)`` is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from kptool.render.camera import Camera
from kptool.render.soft import soft_silhouette

PARAMS = ("azimuth", "elevation", "distance")


@dataclass
class Refinement:
    camera: Camera
    losses: list[float]          # mean squared silhouette difference before each step, then after the last
    iou_before: float
    iou_after: float


def silhouette_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def refine_camera(vertices: np.ndarray, faces: np.ndarray, target: np.ndarray, camera: Camera, steps: int = 30,
                  lr: float = 0.01, params: tuple[str, ...] = PARAMS, sigma: float = 0.1,
                  device: str | torch.device = "cpu") -> Refinement:
    """Gradient steps (Adam) on the camera's ``params`` to match ``target``.

    Args:
        vertices ``(V, 3)``, faces ``(F, 3)``: the mesh, in the camera's frame.
        target: ``(S, S)`` silhouette (bool or [0, 1]) with ``S == camera.size``.
        camera: the initial camera. Angles move in radians, the distance as a scale on it
            (so ``lr`` means the same for shapes of any size, as in the reference code).
    """
    unknown = set(params) - set(PARAMS)
    if unknown or not params:
        raise ValueError(f"params must be a non-empty subset of {PARAMS}, got {params}")
    if steps < 0:
        raise ValueError("steps must be >= 0")
    target = np.asarray(target, dtype=np.float32)
    if target.shape != (camera.size, camera.size):
        raise ValueError(f"target silhouette is {target.shape}, the camera renders {camera.size} x {camera.size}")
    dt = torch.float32
    verts = torch.as_tensor(np.asarray(vertices), dtype=dt, device=device)
    tri = torch.as_tensor(np.asarray(faces), dtype=torch.long, device=device)
    goal = torch.as_tensor(target, device=device)
    values = {"azimuth": torch.tensor(camera.azimuth, dtype=dt, device=device),
              "elevation": torch.tensor(camera.elevation, dtype=dt, device=device),
              "scale": torch.tensor(1.0, dtype=dt, device=device)}
    names = [("scale" if p == "distance" else p) for p in params]
    for n in names:
        values[n].requires_grad_(True)
    optimiser = torch.optim.Adam([values[n] for n in names], lr=lr)
    centre = torch.tensor(camera.target, dtype=dt, device=device)

    def loss_now() -> torch.Tensor:
        sil = soft_silhouette(verts, tri, values["azimuth"], values["elevation"], camera.distance * values["scale"],
                              centre, camera.fov, camera.size, sigma)
        return ((sil - goal) ** 2).mean()

    losses = []
    for _ in range(steps):
        optimiser.zero_grad()
        loss = loss_now()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        losses.append(float(loss_now()))
    refined = replace(camera, azimuth=float(values["azimuth"].detach()) % (2 * np.pi),
                      elevation=float(values["elevation"].detach()),
                      distance=camera.distance * float(values["scale"].detach()))
    from kptool.render.raster import rasterize

    before = rasterize(vertices, faces, camera).mask
    after = rasterize(vertices, faces, refined).mask
    goal_mask = target > 0.5
    return Refinement(refined, losses, silhouette_iou(before, goal_mask), silhouette_iou(after, goal_mask))


def read_silhouette(path) -> np.ndarray:
    """A square mask image (PNG, ...) as ``(S, S)`` bool: pixels brighter than half are the shape."""
    from PIL import Image, UnidentifiedImageError

    from kptool.errors import InputError

    try:
        with Image.open(path) as im:
            mask = np.asarray(im.convert("L"), dtype=np.float32) / 255.0 > 0.5
    except (OSError, UnidentifiedImageError) as e:
        raise InputError(path, f"unreadable silhouette image ({e})") from None
    if mask.shape[0] != mask.shape[1]:
        raise InputError(path, f"silhouette must be square, got {mask.shape[1]} x {mask.shape[0]}")
    if not mask.any():
        raise InputError(path, "silhouette is empty (no pixel above half brightness)")
    return mask
