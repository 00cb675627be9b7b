"""Differentiable silhouettes: a soft rasteriser in plain PyTorch (CPU and CUDA, autograd).

SoftRas formulation (Liu et al. 2019): each triangle ``j`` covers pixel ``p`` with
probability ``D_j(p) = sigmoid(s_j(p) d_j(p)^2 / sigma)``, where ``d_j`` is the
distance from the pixel centre to the projected triangle's boundary (pixels) and
``s_j = +1`` inside, ``-1`` outside; the silhouette is ``1 - prod_j (1 - D_j)``.
As ``sigma -> 0`` it becomes the hard silhouette of :mod:`kptool.render.raster`
(same cameras, same pixel centres, both windings, the same faces skipped).

Only (pixel, face) pairs within ``sqrt(sigma * CUTOFF)`` pixels of a face's
bounding box are evaluated (farther ones change a pixel by less than
``exp(-CUTOFF)``), so memory grows with the covered area, not pixels x faces.
"""

from __future__ import annotations

import math

import torch

from kptool.render.camera import look_at, project

CUTOFF = 18.0           # exp(-18) ~ 1.5e-8: what a culled pair could have contributed


def _pairs(screen: torch.Tensor, faces: torch.Tensor, size: int, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(face index, pixel index) of every pixel within ``margin`` of each face's box; ``(P,)`` each."""
    with torch.no_grad():
        tri = screen[faces][..., :2]                                   # (F, 3, 2)
        lo = torch.ceil(tri.min(dim=1).values - margin).clamp(0, size - 1).long()
        hi = torch.floor(tri.max(dim=1).values + margin).clamp(0, size - 1).long()
        width = (hi[:, 0] - lo[:, 0] + 1).clamp(min=0)
        height = (hi[:, 1] - lo[:, 1] + 1).clamp(min=0)
        outside = (tri.max(dim=1).values + margin < 0).any(1) | (tri.min(dim=1).values - margin > size - 1).any(1)
        counts = torch.where(outside, torch.zeros_like(width), width * height)
        face = torch.repeat_interleave(torch.arange(len(faces), device=screen.device), counts)
        start = torch.cumsum(counts, 0) - counts
        local = torch.arange(int(counts.sum()), device=screen.device) - start[face]
        x = lo[face, 0] + local % width[face]
        y = lo[face, 1] + torch.div(local, width[face], rounding_mode="floor")
    return face, y * size + x


def soft_silhouette_screen(screen: torch.Tensor, faces: torch.Tensor, size: int, sigma: float,
                           near: float) -> torch.Tensor:
    """``(size, size)`` soft silhouette from projected vertices ``screen`` ``(V, 3)`` = ``(u, v, z)``."""
    if sigma <= 0:
        raise ValueError("sigma must be positive")
    tri_all = screen[faces]                                            # (F, 3, 3)
    corners = tri_all[:, :, :2]
    edges = corners.roll(-1, dims=1) - corners                         # (F, 3, 2): ab, bc, ca
    area = edges[:, 0, 0] * edges[:, 2, 1] - edges[:, 0, 1] * edges[:, 2, 0]
    keep = (tri_all[:, :, 2].min(1).values >= near) & (area.detach().abs() > 1e-12)
    corners, edges = corners[keep], edges[keep]
    inv_length2 = 1 / (edges * edges).sum(-1).clamp(min=1e-12)         # (F, 3)
    face, pixel = _pairs(screen.detach(), faces[keep], size, math.sqrt(sigma * CUTOFF))
    p = torch.stack([(pixel % size), torch.div(pixel, size, rounding_mode="floor")], 1).to(screen.dtype)
    to_p = p[:, None, :] - corners[face]                               # (P, 3, 2): from each corner
    e = edges[face]
    # squared distance to each edge segment, then to the triangle's boundary
    t = ((to_p * e).sum(-1) * inv_length2[face]).clamp(0, 1)
    d2 = ((to_p - t[..., None] * e) ** 2).sum(-1).min(-1).values
    # inside: the pixel is on the same side of all three edges (either winding)
    side = e[..., 0] * to_p[..., 1] - e[..., 1] * to_p[..., 0]
    inside = (side >= 0).all(-1) | (side <= 0).all(-1)
    signed = torch.where(inside, d2, -d2) / sigma
    # log(1 - sigmoid(x)) = logsigmoid(-x), summed per pixel: the product over faces, stably.
    log_empty = torch.zeros(size * size, dtype=screen.dtype, device=screen.device)
    log_empty = log_empty.index_add(0, pixel, torch.nn.functional.logsigmoid(-signed))
    return (1 - torch.exp(log_empty)).reshape(size, size)


def soft_silhouette(vertices: torch.Tensor, faces: torch.Tensor, azimuth: torch.Tensor, elevation: torch.Tensor,
                    distance: torch.Tensor, target: torch.Tensor, fov: float, size: int, sigma: float = 1.0,
                    near: float = 1e-3) -> torch.Tensor:
    """Soft silhouette ``(size, size)`` in [0, 1] of a mesh seen from a camera (see :mod:`kptool.render.camera`).

    Args:
        vertices: ``(V, 3)`` float tensor; faces: ``(F, 3)`` long tensor (same device).
        azimuth, elevation, distance: scalar tensors (radians; shape units), differentiable.
        target: ``(3,)`` look-at point. fov: radians. size: pixels (square image).
        sigma: softness in squared pixels (about the width of the blur, squared).
        near: faces with a vertex nearer than ``near x distance`` are skipped, as by the hard rasteriser.
    """
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be (F, 3), got {tuple(faces.shape)}")
    R, t = look_at(azimuth, elevation, distance, target)
    f = (size / 2) / math.tan(fov / 2)
    screen = project(vertices, R.to(vertices.dtype), t.to(vertices.dtype), f, size)
    return soft_silhouette_screen(screen, faces, size, sigma, float(near * distance.detach()))
