"""Render one shape from several cameras: RGB, silhouette, depth, normals, keypoints.

Lighting is deliberately simple and documented (docs/formats.md): two-sided
Lambertian shading with flat face normals, a head light and a key light from
above, plus ambient light; textures and material colours are shaded as they
are (no gamma handling). Backgrounds are ``white`` or ``black`` (plain) or
``random`` (a seeded linear gradient between two random colours).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from kptool.render.camera import Camera, project_np
from kptool.render.materials import RenderMesh, sample_texture
from kptool.render.raster import Fragments, rasterize

BACKGROUNDS = ("white", "black", "random")
AMBIENT, HEAD, KEY = 0.3, 0.55, 0.3
KEY_DIRECTION = np.array([-0.4, -0.8, -0.45])          # camera frame (y down): up, left, towards the viewer
KEY_DIRECTION = KEY_DIRECTION / np.linalg.norm(KEY_DIRECTION)
# A keypoint is hidden when the surface seen at its pixel and at all 8 neighbours is nearer than
# the keypoint by more than this fraction of the shape size (keypoints sit on the surface; the
# neighbours keep ones on parts thinner than a pixel, and on silhouette edges, visible).
VISIBILITY_TOLERANCE = 0.03


@dataclass
class View:
    """One rendered view; images are ``(H, W, ...)`` with ``H = W = camera.size``.

    Attributes:
        rgb: ``(H, W, 3)`` uint8.
        silhouette: ``(H, W)`` bool.
        depth: ``(H, W)`` float32 camera-space z, inf on the background.
        normals: ``(H, W, 3)`` float32 unit normals in the camera frame, facing the camera; 0 on the background.
        keypoints_2d: ``(K, 2)`` float32 pixel coordinates ``(u, v)``; ``keypoint_depth`` ``(K,)``;
        keypoint_visible: ``(K,)`` bool (in the image and not hidden by the shape itself).
        background: how the background was made (JSON).
    """

    camera: Camera
    rgb: np.ndarray
    silhouette: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    keypoints_2d: np.ndarray
    keypoint_depth: np.ndarray
    keypoint_visible: np.ndarray
    background: dict[str, Any]


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``(F, 3)`` unit normals (zero for degenerate faces)."""
    v = vertices[faces]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, length, out=np.zeros_like(n), where=length > 0)


def make_background(kind: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """``(size, size, 3)`` float32 background and its JSON description."""
    if kind == "white":
        return np.ones((size, size, 3), np.float32), {"kind": "white"}
    if kind == "black":
        return np.zeros((size, size, 3), np.float32), {"kind": "black"}
    if kind != "random":
        raise ValueError(f"unknown background {kind!r}")
    a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    angle = rng.uniform(0, 2 * math.pi)
    grid = (np.arange(size) - (size - 1) / 2) / size
    s = np.clip(0.5 + grid[None, :] * math.cos(angle) + grid[:, None] * math.sin(angle), 0, 1)[..., None]
    image = (a * (1 - s) + b * s).astype(np.float32)
    return image, {"kind": "random", "colors": [a.round(4).tolist(), b.round(4).tolist()],
                   "angle": round(angle, 4)}


def shade(mesh: RenderMesh, fragments: Fragments, R: np.ndarray, normals_world: np.ndarray,
          background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB ``(H, W, 3)`` float32 in [0, 1] and camera-frame normals ``(H, W, 3)``."""
    mask = fragments.mask
    ys, xs = np.nonzero(mask)
    f = fragments.face[ys, xs]
    n = normals_world[f] @ R.T
    # Camera frame: the viewer is at the origin looking along +z, so a surface facing it has n_z < 0.
    n = np.where(n[:, 2:3] > 0, -n, n)
    colour = mesh.face_color[f].copy()
    textured = mesh.face_texture[f]
    for ti in np.unique(textured[textured >= 0]):
        sel = textured == ti
        corners = mesh.faces[f[sel]]
        w = fragments.bary[ys[sel], xs[sel]]
        uv = np.einsum("nk,nkd->nd", w, mesh.uv[corners])
        colour[sel] *= sample_texture(mesh.textures[ti], uv)
    head = np.abs(n[:, 2])
    key = np.clip(n @ -KEY_DIRECTION, 0, None)
    light = AMBIENT + HEAD * head + KEY * key
    rgb = background.copy()
    rgb[ys, xs] = np.clip(colour * light[:, None], 0, 1)
    normal_map = np.zeros(mask.shape + (3,), np.float32)
    normal_map[ys, xs] = n
    return rgb, normal_map


def keypoint_visibility(uvz: np.ndarray, depth: np.ndarray, tolerance: float) -> np.ndarray:
    """``(K,)`` bool: inside the image and not behind the surface seen around its pixel."""
    size = depth.shape[0]
    u, v = np.rint(uvz[:, 0]).astype(np.int64), np.rint(uvz[:, 1]).astype(np.int64)
    inside = (u >= 0) & (u < size) & (v >= 0) & (v < size) & (uvz[:, 2] > 0)
    visible = np.zeros(len(uvz), dtype=bool)
    padded = np.pad(depth, 1, constant_values=np.inf)
    for k in np.nonzero(inside)[0]:
        window = padded[v[k]:v[k] + 3, u[k]:u[k] + 3]
        visible[k] = window.max() >= uvz[k, 2] - tolerance
    return visible


def render_views(mesh: RenderMesh, cameras: list[Camera], keypoints: np.ndarray | None = None,
                 background: str = "white", rng: np.random.Generator | None = None) -> list[View]:
    """Render ``mesh`` from every camera; ``keypoints`` ``(K, 3)`` in the mesh's frame."""
    rng = rng if rng is not None else np.random.default_rng(0)
    normals_world = face_normals(mesh.vertices, mesh.faces)
    kps = np.zeros((0, 3)) if keypoints is None else np.asarray(keypoints, dtype=np.float64)
    tolerance = VISIBILITY_TOLERANCE * mesh.size
    out = []
    for cam in cameras:
        fragments = rasterize(mesh.vertices, mesh.faces, cam)
        R, _ = cam.extrinsics()
        bg, bg_info = make_background(background, cam.size, rng)
        rgb, normal_map = shade(mesh, fragments, R, normals_world, bg)
        uvz = project_np(kps, cam) if len(kps) else np.zeros((0, 3))
        out.append(View(cam, (rgb * 255 + 0.5).astype(np.uint8), fragments.mask, fragments.depth, normal_map,
                        uvz[:, :2].astype(np.float32), uvz[:, 2].astype(np.float32),
                        keypoint_visibility(uvz, fragments.depth, tolerance), bg_info))
    return out
