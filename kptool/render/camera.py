"""Cameras on a sphere around a shape, as in the 2D-3D-2D reference code.

Conventions (docs/formats.md, "Rendered dataset"):

- azimuth ``az`` in [0, 2 pi), elevation ``el`` = polar angle from +y in [0, pi];
  the eye is ``target + d (sin el sin az, cos el, sin el cos az)`` and looks at
  ``target`` with +y up, so ``el = pi/2`` is level and ``az = 0`` looks along -z.
- camera frame: OpenCV (x right, y down, z forward); ``x_cam = R x + t``.
- pixels: OpenCV, integer coordinates at pixel centres; ``u`` column, ``v`` row;
  ``K = [[f, 0, (W-1)/2], [0, f, (H-1)/2], [0, 0, 1]]`` with ``f = (W/2) / tan(fov/2)``.

Everything is written once, in torch, so that the soft rasteriser can
differentiate through the same camera the hard renderer uses; numpy callers get
float64 arrays back.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass
class Camera:
    """One view: angles in radians, ``distance`` and ``target`` in the shape's frame."""

    azimuth: float
    elevation: float
    distance: float
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    fov: float = math.pi / 2          # the reference renders with a 90 degree field of view
    size: int = 256                   # square images, size x size pixels

    def to_json(self) -> dict:
        d = asdict(self)
        d["target"] = [float(x) for x in self.target]
        return d

    def intrinsics(self) -> np.ndarray:
        """``(3, 3)`` float64 ``K``."""
        return intrinsics(self.fov, self.size)

    def extrinsics(self) -> tuple[np.ndarray, np.ndarray]:
        """``R`` ``(3, 3)`` and ``t`` ``(3,)`` float64: ``x_cam = R x + t``."""
        R, t = look_at(torch.tensor(self.azimuth, dtype=torch.float64), torch.tensor(self.elevation, dtype=torch.float64),
                       torch.tensor(self.distance, dtype=torch.float64), torch.tensor(self.target, dtype=torch.float64))
        return R.numpy(), t.numpy()

    def eye(self) -> np.ndarray:
        return np.asarray(self.target, dtype=np.float64) + self.distance * direction(self.azimuth, self.elevation)


def direction(azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector from the target to the eye, ``(3,)``."""
    return np.array([math.sin(elevation) * math.sin(azimuth), math.cos(elevation),
                     math.sin(elevation) * math.cos(azimuth)])


def focal(fov: float, size: int) -> float:
    return (size / 2) / math.tan(fov / 2)


def intrinsics(fov: float, size: int) -> np.ndarray:
    f = focal(fov, size)
    c = (size - 1) / 2
    return np.array([[f, 0, c], [0, f, c], [0, 0, 1]], dtype=np.float64)


def look_at(azimuth: torch.Tensor, elevation: torch.Tensor, distance: torch.Tensor,
            target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable extrinsics: ``R`` ``(3, 3)`` and ``t`` ``(3,)`` from scalar tensors.

    The right vector is written in closed form, ``(cos az, 0, -sin az)``, which is
    the limit of ``forward x up`` and stays defined looking straight down or up.
    """
    se, ce, sa, ca = torch.sin(elevation), torch.cos(elevation), torch.sin(azimuth), torch.cos(azimuth)
    zero = torch.zeros_like(sa)
    back = torch.stack([se * sa, ce, se * ca])            # target -> eye
    forward = -back
    right = torch.stack([ca, zero, -sa])
    down = torch.linalg.cross(forward, right)
    R = torch.stack([right, down, forward])
    eye = target + distance * back
    return R, -R @ eye


def project(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor, f: float, size: int) -> torch.Tensor:
    """Pixel coordinates and depth ``(N, 3)`` = ``(u, v, z_cam)`` of ``points`` ``(N, 3)``."""
    cam = points @ R.T + t
    z = cam[:, 2]
    c = (size - 1) / 2
    u = f * cam[:, 0] / z + c
    v = f * cam[:, 1] / z + c
    return torch.stack([u, v, z], dim=1)


def project_np(points: np.ndarray, camera: Camera) -> np.ndarray:
    """numpy front end of :func:`project`: ``(N, 3)`` float64 ``(u, v, z_cam)``."""
    R, t = camera.extrinsics()
    return project(torch.as_tensor(np.asarray(points, dtype=np.float64)), torch.as_tensor(R), torch.as_tensor(t),
                   focal(camera.fov, camera.size), camera.size).numpy()


@dataclass
class ViewSampling:
    """How ``kptool render`` draws cameras; angles in degrees, distances in shape sizes.

    The shape size is half the longest side of its bounding box, so a distance of
    2.08 is the reference code's 1.04 for ShapeNet shapes in a unit cube.
    """

    views: int = 20
    elevation: tuple[float, float] = (0.0, 180.0)   # polar angle from +y; default: the whole sphere
    distance: tuple[float, float] = (2.08, 2.08)
    fov: float = 90.0
    size: int = 256

    def sample(self, rng: np.random.Generator, target: np.ndarray, shape_size: float) -> list[Camera]:
        """``views`` cameras: azimuth uniform on the circle, directions uniform on the sphere
        zone between the two polar angles (``cos el`` uniform), distance uniform in its range."""
        lo, hi = (math.radians(a) for a in self.elevation)
        cams = []
        for _ in range(self.views):
            az = rng.uniform(0, 2 * math.pi)
            el = math.acos(rng.uniform(math.cos(hi), math.cos(lo)))
            d = rng.uniform(*self.distance) * shape_size
            cams.append(Camera(az, el, d, tuple(float(x) for x in target), math.radians(self.fov), self.size))
        return cams
