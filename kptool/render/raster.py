"""Hard z-buffer rasteriser (numba): which face is seen at each pixel centre, how far.

Chosen over GL, Embree ray casting and Mitsuba (docs/render.md has the
measurements): it installs with kptool's own dependencies on any machine, needs
no display or GPU driver, and samples pixel centres exactly as the soft
rasteriser (:mod:`kptool.render.soft`) does, so the two agree as sigma -> 0.

A pixel is covered by a triangle when its centre lies inside the projected
triangle (edge functions >= 0, either winding: meshes are rendered two-sided);
depth is interpolated perspective-correctly (1/z is linear in screen space).
Triangles with a vertex behind the near plane are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch

from kptool.render.camera import Camera, focal, project


@dataclass
class Fragments:
    """What the rasteriser saw, per pixel of a ``(H, W)`` image.

    Attributes:
        face: ``(H, W)`` int32 index of the visible face, -1 for background.
        depth: ``(H, W)`` float32 camera-space z (distance along the view axis), inf for background.
        bary: ``(H, W, 3)`` float32 perspective-correct barycentric coordinates in that face.
        screen: ``(V, 3)`` float64 projected vertices ``(u, v, z_cam)``.
    """

    face: np.ndarray
    depth: np.ndarray
    bary: np.ndarray
    screen: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return self.face >= 0


@numba.njit(cache=True, nogil=True)
def _rasterize(screen, faces, height, width, near, face_out, depth_out, bary_out):  # pragma: no cover - jitted
    for fi in range(faces.shape[0]):
        a, b, c = faces[fi, 0], faces[fi, 1], faces[fi, 2]
        za, zb, zc = screen[a, 2], screen[b, 2], screen[c, 2]
        if za < near or zb < near or zc < near:
            continue
        ax, ay, bx, by, cx, cy = screen[a, 0], screen[a, 1], screen[b, 0], screen[b, 1], screen[c, 0], screen[c, 1]
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if area == 0.0:
            continue
        x0 = max(int(np.ceil(min(ax, bx, cx))), 0)
        x1 = min(int(np.floor(max(ax, bx, cx))), width - 1)
        y0 = max(int(np.ceil(min(ay, by, cy))), 0)
        y1 = min(int(np.floor(max(ay, by, cy))), height - 1)
        inv = 1.0 / area
        for y in range(y0, y1 + 1):
            for x in range(x0, x1 + 1):
                w0 = ((bx - x) * (cy - y) - (by - y) * (cx - x)) * inv
                w1 = ((cx - x) * (ay - y) - (cy - y) * (ax - x)) * inv
                w2 = 1.0 - w0 - w1
                if w0 < 0.0 or w1 < 0.0 or w2 < 0.0:
                    continue
                # perspective-correct: interpolate 1/z, then weights divided by z
                p0, p1, p2 = w0 / za, w1 / zb, w2 / zc
                s = p0 + p1 + p2
                z = 1.0 / s
                if z < depth_out[y, x]:
                    depth_out[y, x] = z
                    face_out[y, x] = fi
                    bary_out[y, x, 0] = p0 / s
                    bary_out[y, x, 1] = p1 / s
                    bary_out[y, x, 2] = p2 / s


def rasterize(vertices: np.ndarray, faces: np.ndarray, camera: Camera, near: float = 1e-3) -> Fragments:
    """Rasterise a triangle mesh ``vertices`` ``(V, 3)``, ``faces`` ``(F, 3)`` seen from ``camera``."""
    R, t = camera.extrinsics()
    screen = project(torch.as_tensor(np.asarray(vertices, dtype=np.float64)), torch.as_tensor(R),
                     torch.as_tensor(t), focal(camera.fov, camera.size), camera.size).numpy()
    h = w = camera.size
    face = np.full((h, w), -1, dtype=np.int32)
    depth = np.full((h, w), np.inf, dtype=np.float32)
    bary = np.zeros((h, w, 3), dtype=np.float32)
    _rasterize(np.ascontiguousarray(screen), np.ascontiguousarray(faces, dtype=np.int64), h, w, near * camera.distance,
               face, depth, bary)
    return Fragments(face, depth, bary, screen)
