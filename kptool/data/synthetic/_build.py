"""Building blocks shared by the procedural categories.

A category builds a shape as an :class:`Assembly`: solid primitives (boxes,
tapered capsules, surfaces of revolution...) tagged with a part label, and
keypoints placed analytically on those primitives. ``Assembly.finish`` unions
the solids into one manifold with ``manifold3d`` (overlapping parts make one
connected, watertight mesh), recovers each output triangle's part from
manifold3d's original-mesh ids, normalises to the ShapeNetCore.v2 frame
(bounding-box centre at the origin, diagonal 1) and snaps keypoints onto the
final surface.

Left/right parts and keypoints are given for one side only and mirrored across
``x = 0``. The output mesh is the x >= 0 half of the union welded to its mirror
image, so it is symmetric vertex for vertex, and keypoint pairs are exact mirror
images. An assembly made with ``symmetric=False`` (the articulated figure, whose
limbs pose independently) places both sides itself and is kept as built; its
symmetry plane is then the one of its deformation space (the rest pose's x = 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import manifold3d
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from kptool.geodesic.surface import snap_to_surface

Manifold = manifold3d.Manifold

# Tessellation: enough for shapes to read as round, few enough to stay fast.
SEGMENTS = 24
# Longest edge of an output mesh, in the normalised frame (diagonal 1).
MAX_EDGE = 0.05
MIRROR_X = np.array([-1.0, 1.0, 1.0])


class BuildFailed(Exception):
    """The parts did not make one connected watertight mesh; the caller redraws."""


# --- primitives ---------------------------------------------------------------

def box(center, size) -> Manifold:
    """Axis-aligned box with the given centre and ``(sx, sy, sz)`` size."""
    return Manifold.cube(list(map(float, size)), True).translate(list(map(float, center)))


def _frame(direction) -> np.ndarray:
    """``(3, 3)`` rotation whose third column is the unit ``direction``."""
    z = np.asarray(direction, float)
    z = z / np.linalg.norm(z)
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def _place(solid: Manifold, rotation: np.ndarray, origin) -> Manifold:
    m = np.concatenate([rotation, np.asarray(origin, float)[:, None]], axis=1)
    return solid.transform(m)


def rod(p0, p1, r0: float, r1: float | None = None, segments: int = SEGMENTS) -> Manifold:
    """Truncated cone with flat ends from ``p0`` (radius ``r0``) to ``p1`` (radius ``r1``)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    axis = p1 - p0
    solid = Manifold.cylinder(float(np.linalg.norm(axis)), float(r0), float(r0 if r1 is None else r1), segments)
    return _place(solid, _frame(axis), p0)


def square_rod(p0, p1, width: float, depth: float) -> Manifold:
    """Bar of ``width x depth`` rectangular section from ``p0`` to ``p1``.

    The width runs along x (along z for bars parallel to x) so that upright legs
    and rails face the front squarely.
    """
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    axis = p1 - p0
    d = axis / np.linalg.norm(axis)
    ref = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    x = ref - ref.dot(d) * d
    x /= np.linalg.norm(x)
    solid = Manifold.cube([float(width), float(depth), float(np.linalg.norm(axis))])
    solid = solid.translate([-width / 2, -depth / 2, 0.0])
    return _place(solid, np.stack([x, np.cross(d, x), d], axis=1), p0)


def sphere(center, radius: float, segments: int = SEGMENTS) -> Manifold:
    return Manifold.sphere(float(radius), segments).translate(list(map(float, center)))


def ellipsoid(center, radii, segments: int = SEGMENTS) -> Manifold:
    return Manifold.sphere(1.0, segments).scale(list(map(float, radii))).translate(list(map(float, center)))


def capsule(p0, p1, r0: float, r1: float | None = None, segments: int = SEGMENTS) -> Manifold:
    """Tapered capsule: convex hull of two spheres."""
    return hull(sphere(p0, r0, segments), sphere(p1, r0 if r1 is None else r1, segments))


def hull(*solids: Manifold) -> Manifold:
    return Manifold.batch_hull(list(solids))


def revolve(profile, axis: str = "y", segments: int = 2 * SEGMENTS) -> Manifold:
    """Solid of revolution of a closed ``(radius, height)`` polygon (``(M, 2)``) about ``axis`` ("y" or "z")."""
    # manifold3d revolves about the section's y axis and makes that axis z.
    solid = Manifold.revolve(manifold3d.CrossSection([np.asarray(profile, float)]), segments)
    return solid.rotate([-90.0, 0.0, 0.0]) if axis == "y" else solid


# --- assembly -----------------------------------------------------------------

@dataclass
class BuiltShape:
    """What :meth:`Assembly.finish` returns, in the normalised frame."""

    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int64
    face_labels: np.ndarray  # (F,) int64
    keypoints: np.ndarray  # (K, 3) float64, sorted by id
    keypoint_ids: np.ndarray  # (K,) int64
    symmetric_pairs: np.ndarray  # (P, 2) int64
    symmetry_plane: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0, 0.0]))  # (4,) n . x + d = 0


@dataclass
class Assembly:
    """Parts and keypoints of one shape under construction.

    ``pairs`` maps a keypoint id to the id of its mirror image (both ways).
    ``symmetric``: the shape is mirror-symmetric about x = 0 (one side is given, the
    other is its image); False when both sides are placed independently.
    """

    pairs: dict[int, int]
    symmetric: bool = True
    solids: list[Manifold] = field(default_factory=list)
    cuts: list[Manifold] = field(default_factory=list)
    labels: dict[int, int] = field(default_factory=dict)
    points: dict[int, np.ndarray] = field(default_factory=dict)

    def _tag(self, solid: Manifold, label: int) -> Manifold:
        solid = solid.as_original()
        self.labels[solid.original_id()] = label
        return solid

    def add(self, solid: Manifold, label: int, mirror: bool = False) -> None:
        """Add a solid with a part label; ``mirror`` also adds its image across x = 0."""
        solid = self._tag(solid, label)
        self.solids.append(solid)
        if mirror:
            # A mirrored copy keeps the original id, hence the label.
            self.solids.append(solid.mirror([1.0, 0.0, 0.0]))

    def cut(self, solid: Manifold, label: int) -> None:
        """Subtract a solid after the union; faces it creates get ``label``."""
        self.cuts.append(self._tag(solid, label))

    def keypoint(self, kid: int, point) -> None:
        """Place keypoint ``kid`` (its mirror partner, if any, follows)."""
        if kid in self.points:
            raise ValueError(f"keypoint {kid} placed twice")
        self.points[kid] = np.asarray(point, float)

    def finish(self) -> BuiltShape:
        solid = Manifold.batch_boolean(self.solids, manifold3d.OpType.Add)
        if self.cuts:
            solid = Manifold.batch_boolean([solid, *self.cuts], manifold3d.OpType.Subtract)
        if solid.status() != manifold3d.Error.NoError or solid.is_empty():
            raise BuildFailed(f"manifold3d failed: {solid.status()}")
        # Normalise as ShapeNetCore.v2 does (bounding-box centre to the origin,
        # diagonal 1), then split long edges so vertices cover the surface evenly.
        bounds = np.asarray(solid.bounding_box(), dtype=np.float64)
        center, scale = (bounds[:3] + bounds[3:]) / 2, 1.0 / np.linalg.norm(bounds[3:] - bounds[:3])
        if not self.symmetric:
            return self._finish_asymmetric(solid, center, scale)
        center[0] = 0.0  # the shape is symmetric: keep x = 0 exact
        solid = solid.translate(list(-center)).scale([scale] * 3)
        # Booleans of coplanar faces and the refinement triangulate the two sides
        # differently; keeping the x >= 0 half and mirroring it makes the mesh
        # exactly symmetric, vertex for vertex.
        half = solid.trim_by_plane([1.0, 0.0, 0.0], 0.0).refine_to_length(MAX_EDGE).to_mesh64()
        run_index = np.asarray(half.run_index, dtype=np.int64) // 3
        run_labels = np.array([self.labels.get(int(i), 0) for i in half.run_original_id], dtype=np.int64)
        vertices, faces, face_labels, seam = mirror_half(
            np.asarray(half.vert_properties, dtype=np.float64)[:, :3],
            np.asarray(half.tri_verts, dtype=np.int64),
            np.repeat(run_labels, np.diff(run_index)),
        )
        require_closed_connected(vertices, faces)

        # Keypoints without a partner lie on the symmetry plane: snap them to the
        # seam so they stay exactly there; mirror the others' snapped positions.
        placed: dict[int, np.ndarray] = {}
        sided: list[tuple[int, np.ndarray]] = []
        for kid, p in self.points.items():
            p = (p - center) * scale
            if kid not in self.pairs:
                placed[kid] = closest_on_segments(vertices[seam[:, 0]], vertices[seam[:, 1]], p)
            elif self.pairs[kid] in self.points:
                raise ValueError(f"keypoints {kid} and {self.pairs[kid]} are mirror images: place only one")
            else:
                sided.append((kid, p))
        if sided:
            snapped = snap_to_surface(vertices, faces, np.stack([p for _, p in sided])).positions(vertices, faces)
            for (kid, _), p in zip(sided, snapped):
                placed[kid], placed[self.pairs[kid]] = p, p * MIRROR_X
        all_ids = np.array(sorted(placed), dtype=np.int64)
        pairs = sorted((a, b) for a, b in self.pairs.items() if a < b and a in placed and b in placed)
        return BuiltShape(
            vertices=vertices,
            faces=faces,
            face_labels=face_labels,
            keypoints=np.stack([placed[i] for i in all_ids]),
            keypoint_ids=all_ids,
            symmetric_pairs=np.array(pairs, dtype=np.int64).reshape(-1, 2),
        )

    def _finish_asymmetric(self, solid: Manifold, center: np.ndarray, scale: float) -> BuiltShape:
        """The union as built (no mirroring), normalised; every keypoint snapped on its own."""
        mesh = solid.translate(list(-center)).scale([scale] * 3).refine_to_length(MAX_EDGE).to_mesh64()
        vertices = np.asarray(mesh.vert_properties, dtype=np.float64)[:, :3]
        faces = np.asarray(mesh.tri_verts, dtype=np.int64)
        run_labels = np.array([self.labels.get(int(i), 0) for i in mesh.run_original_id], dtype=np.int64)
        face_labels = np.repeat(run_labels, np.diff(np.asarray(mesh.run_index, dtype=np.int64) // 3))
        if (face_labels == 0).any():
            raise BuildFailed("a face has no part label")
        require_closed_connected(vertices, faces)
        ids = np.array(sorted(self.points), dtype=np.int64)
        raw = np.stack([(self.points[int(i)] - center) * scale for i in ids])
        keypoints = snap_to_surface(vertices, faces, raw).positions(vertices, faces)
        pairs = sorted((a, b) for a, b in self.pairs.items() if a < b and a in self.points and b in self.points)
        # The rest pose's mid-plane x = 0, carried through x' = (x - center) * scale.
        plane = np.array([1.0, 0.0, 0.0, float(center[0] * scale)])
        return BuiltShape(vertices=vertices, faces=faces, face_labels=face_labels, keypoints=keypoints,
                          keypoint_ids=ids, symmetric_pairs=np.array(pairs, dtype=np.int64).reshape(-1, 2),
                          symmetry_plane=plane)


# --- symmetry, checks and the symmetry plane ---------------------------------------------

def mirror_half(vertices: np.ndarray, faces: np.ndarray, face_labels: np.ndarray):
    """Whole mesh from the closed x >= 0 half of a solid cut at x = 0.

    The cap faces (in the plane) are dropped and the rest is mirrored and welded
    along the cut. Returns ``vertices`` ``(V, 3)``, ``faces`` ``(F, 3)``,
    ``face_labels`` ``(F,)`` with the x >= 0 half first, and ``seam`` ``(E, 2)``,
    the vertex pairs of the edges in the plane (the surface's cut by the plane).
    """
    vertices = vertices.copy()
    on_plane = np.abs(vertices[:, 0]) <= 1e-9
    vertices[on_plane, 0] = 0.0
    keep = ~on_plane[faces].all(axis=1)
    faces, face_labels = faces[keep], face_labels[keep]
    if (face_labels == 0).any():
        raise BuildFailed("a face off the symmetry plane has no part label")
    # Drop vertices that only the cap used, then weld the mirror image on the plane.
    used = np.zeros(len(vertices), bool)
    used[faces] = True
    index = np.cumsum(used) - 1
    vertices, on_plane, faces = vertices[used], on_plane[used], index[faces]
    image = np.where(on_plane, np.arange(len(vertices)), len(vertices) + np.cumsum(~on_plane) - 1)
    edges = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    return (
        np.concatenate([vertices, vertices[~on_plane] * MIRROR_X]),
        np.concatenate([faces, image[faces][:, ::-1]]),
        np.concatenate([face_labels, face_labels]),
        edges[on_plane[edges].all(axis=1)],
    )


def require_closed_connected(vertices: np.ndarray, faces: np.ndarray) -> None:
    """Raise :class:`BuildFailed` unless the mesh is closed, consistently wound and connected.

    Closed and consistently wound: every directed edge occurs exactly once and so
    does its reverse (each edge joins exactly two faces, traversed oppositely).
    """
    n = len(vertices)
    edges = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    forward = np.sort(edges[:, 0] * n + edges[:, 1])
    backward = np.sort(edges[:, 1] * n + edges[:, 0])
    if (np.diff(forward) == 0).any() or not np.array_equal(forward, backward):
        raise BuildFailed("mesh is not watertight")
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    count, _ = connected_components(graph, directed=False)
    if count != 1:
        raise BuildFailed(f"mesh has {count} connected components")


def closest_on_segments(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Closest point to ``p`` ``(3,)`` on the segments ``a[i]``-``b[i]`` (``(E, 3)`` each)."""
    ab = b - a
    t = np.clip(((p - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-300), 0.0, 1.0)
    q = a + t[:, None] * ab
    return q[np.argmin(((q - p) ** 2).sum(1))]


# --- categories -----------------------------------------------------------------

@dataclass(frozen=True)
class CategorySpec:
    """A procedural category: its keypoint and part tables and its builder.

    Attributes:
        name: category name (``generate_shape``'s argument).
        keypoint_names: semantic id -> name; a shape carries a subset of these ids
            (an id is absent when its part is).
        part_names: 1-based face label -> part name.
        symmetric_pairs: id pairs mapped onto each other by the x = 0 plane; ids in
            no pair lie on the plane.
        variants: short description of the variation, for documentation.
        symmetric: every instance is mirror-symmetric about x = 0; False for a category
            whose instances are not, while its deformation space is (posed figures).
        build: ``build(rng, assembly) -> meta`` adds parts and keypoints to the
            assembly and returns JSON-serialisable facts about the variant drawn.
    """

    name: str
    keypoint_names: dict[int, str]
    part_names: dict[int, str]
    symmetric_pairs: tuple[tuple[int, int], ...]
    variants: str
    build: Callable[[np.random.Generator, Assembly], dict]
    symmetric: bool = True

    def partner(self) -> dict[int, int]:
        """Keypoint id -> id of its mirror image, both ways."""
        out = {a: b for a, b in self.symmetric_pairs}
        out.update({b: a for a, b in self.symmetric_pairs})
        return out
