"""What a renderer needs to colour a mesh: one base colour or texture per face.

Colours come, in order of preference, from the mesh file's own materials and
textures (OBJ/MTL, glTF: read by trimesh), from per-part labels (a fixed
palette), or a plain grey. ``colour_source`` records which one a render used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from kptool.data.transform import Transform
from kptool.errors import InputError

GREY = np.array([0.7, 0.7, 0.7], dtype=np.float32)


def part_palette(n: int) -> np.ndarray:
    """``(n, 3)`` float32 distinct colours for part labels 0..n-1 (matplotlib's tab10/tab20)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return np.array([cmap(i % cmap.N)[:3] for i in range(n)], dtype=np.float32)


def shape_size(vertices: np.ndarray) -> float:
    """Half the longest side of the bounding box of ``(V, 3)`` vertices: the unit of camera distances."""
    lo, hi = np.min(vertices, 0), np.max(vertices, 0)
    return float((hi - lo).max() / 2)


def box_centre(vertices: np.ndarray) -> np.ndarray:
    """``(3,)`` centre of the bounding box of ``(V, 3)`` vertices: where cameras look."""
    return (np.min(vertices, 0) + np.max(vertices, 0)) / 2


class BoundingBoxOfVertices:
    """``size`` and ``centre`` of a ``vertices`` attribute's bounding box, for mesh-like classes."""

    vertices: np.ndarray

    @property
    def size(self) -> float:
        """Half the longest side of the bounding box (what camera distances are measured in)."""
        return shape_size(self.vertices)

    @property
    def centre(self) -> np.ndarray:
        return box_centre(self.vertices)


@dataclass
class RenderMesh(BoundingBoxOfVertices):
    """A triangle mesh with per-face appearance, in the frame the cameras live in.

    Attributes:
        vertices: ``(V, 3)`` float64.
        faces: ``(F, 3)`` int64.
        face_color: ``(F, 3)`` float32 base colour in [0, 1] (multiplied by the texture where there is one).
        face_texture: ``(F,)`` int32 index into ``textures``, -1 for none.
        uv: ``(V, 2)`` float32 texture coordinates (zeros where there are none).
        textures: list of ``(h, w, 3)`` float32 images in [0, 1].
        colour_source: ``"materials"``, ``"parts"`` or ``"grey"``.
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_color: np.ndarray
    face_texture: np.ndarray
    uv: np.ndarray
    textures: list[np.ndarray] = field(default_factory=list)
    colour_source: str = "grey"


def from_arrays(vertices: np.ndarray, faces: np.ndarray, face_labels: np.ndarray | None = None) -> RenderMesh:
    """A mesh coloured by part label (one palette colour per label), or grey without labels."""
    faces = np.asarray(faces, dtype=np.int64)
    if face_labels is not None and len(face_labels) == len(faces):
        labels = np.asarray(face_labels, dtype=np.int64)
        colours = part_palette(int(labels.max()) + 1)[np.clip(labels, 0, None)]
        source = "parts"
    else:
        colours, source = np.tile(GREY, (len(faces), 1)), "grey"
    return RenderMesh(np.asarray(vertices, dtype=np.float64), faces, colours.astype(np.float32),
                      np.full(len(faces), -1, dtype=np.int32), np.zeros((len(vertices), 2), dtype=np.float32),
                      [], source)


def _material_colour(material) -> tuple[np.ndarray, np.ndarray | None]:
    """(base colour (3,), texture image or None) of a trimesh material."""
    if material is None:
        return GREY, None
    if hasattr(material, "baseColorFactor") and not hasattr(material, "diffuse"):  # PBR (glTF)
        factor = material.baseColorFactor
        colour = GREY if factor is None else np.asarray(factor[:3], dtype=np.float32) / 255.0
        image = material.baseColorTexture
    else:
        colour = np.asarray(material.diffuse[:3], dtype=np.float32) / 255.0
        image = getattr(material, "image", None)
    if image is None:
        return colour, None
    # An MTL often pairs map_Kd with Kd 0 0 0 (some exporters): the texture alone is the colour.
    return np.ones(3, dtype=np.float32), np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def load_textured(path: str | os.PathLike, transform: Transform | None = None) -> RenderMesh:
    """Read a mesh file with its materials and textures, mapped through ``transform``.

    ``colour_source`` is ``"materials"`` when the file gives any colour, else ``"grey"``.
    """
    import trimesh

    try:
        loaded = trimesh.load(str(path), process=False)
    except Exception as e:  # trimesh raises many types on bad files
        raise InputError(path, f"cannot read mesh with materials ({e.__class__.__name__}: {e})") from None
    parts = loaded.dump(concatenate=False) if isinstance(loaded, trimesh.Scene) else [loaded]
    parts = [p for p in parts if isinstance(p, trimesh.Trimesh) and len(p.faces)]
    if not parts:
        raise InputError(path, "has no triangles")
    verts, faces, colours, tex_index, uvs, textures = [], [], [], [], [], []
    offset, coloured = 0, False
    for p in parts:
        visual = p.visual
        n_f, n_v = len(p.faces), len(p.vertices)
        uv = np.zeros((n_v, 2), dtype=np.float32)
        tex = -1
        coloured = coloured or visual.kind is not None
        if visual.kind == "texture":
            colour, image = _material_colour(getattr(visual, "material", None))
            face_colour = np.tile(colour, (n_f, 1))
            if image is not None and visual.uv is not None and len(visual.uv) == n_v:
                uv = np.asarray(visual.uv, dtype=np.float32)
                tex = len(textures)
                textures.append(image)
        elif visual.kind in ("face", "vertex"):
            face_colour = np.asarray(visual.face_colors[:, :3], dtype=np.float32) / 255.0
        else:
            face_colour = np.tile(GREY, (n_f, 1))
        verts.append(np.asarray(p.vertices, dtype=np.float64))
        faces.append(np.asarray(p.faces, dtype=np.int64) + offset)
        colours.append(face_colour)
        tex_index.append(np.full(n_f, tex, dtype=np.int32))
        uvs.append(uv)
        offset += n_v
    vertices = np.concatenate(verts)
    if transform is not None:
        vertices = transform.apply(vertices)
    return RenderMesh(vertices, np.concatenate(faces), np.concatenate(colours).astype(np.float32),
                      np.concatenate(tex_index), np.concatenate(uvs), textures,
                      "materials" if coloured else "grey")


def sample_texture(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup with wrap-around: ``image`` ``(h, w, 3)``, ``uv`` ``(N, 2)`` -> ``(N, 3)``.

    ``v`` points up the image (OBJ convention), so row 0 is ``v = 1``.
    """
    h, w = image.shape[:2]
    x = (uv[:, 0] % 1.0) * w - 0.5
    y = (1.0 - uv[:, 1] % 1.0) * h - 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x1, y1 = (x0 + 1) % w, (y0 + 1) % h
    x0, y0 = x0 % w, y0 % h
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy
