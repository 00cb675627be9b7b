"""The built-in procedural categories: mesh, keypoint, symmetry and seeding invariants."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import potpourri3d as pp3d
import pytest
import trimesh
from scipy.spatial import cKDTree

from kptool.data.synthetic import CATEGORIES, generate_category, generate_shape, shape_seed
from kptool.data.synthetic._build import (
    BuildFailed,
    closest_on_segments,
    mirror_half,
    require_closed_connected,
)
from kptool.errors import KptoolError

NAMES = sorted(CATEGORIES)
SYMMETRIC = [c for c in NAMES if CATEGORIES[c].symmetric]
SEEDS = range(20)
MIRROR = np.array([-1.0, 1.0, 1.0])


@lru_cache(maxsize=None)
def shape(category: str, seed: int):
    return generate_shape(category, seed)


def shapes(category: str):
    return [shape(category, s) for s in SEEDS]


def as_trimesh(sh) -> trimesh.Trimesh:
    return trimesh.Trimesh(sh.vertices, sh.faces, process=False)


# --- category tables -------------------------------------------------------------

def test_the_five_categories_are_there():
    assert {"chair", "table", "airplane", "mug", "figure"} <= set(CATEGORIES)
    assert SYMMETRIC == ["airplane", "chair", "mug", "table"]


@pytest.mark.parametrize("category", NAMES)
def test_category_tables_are_consistent(category):
    spec = CATEGORIES[category]
    assert spec.name == category
    flat = [i for pair in spec.symmetric_pairs for i in pair]
    assert len(flat) == len(set(flat)), "an id is in two pairs"
    assert set(flat) <= set(spec.keypoint_names)
    assert min(spec.part_names) == 1 and sorted(spec.part_names) == list(range(1, len(spec.part_names) + 1))


# --- meshes ----------------------------------------------------------------------

@pytest.mark.parametrize("category", NAMES)
def test_mesh_is_one_watertight_component_with_part_labels(category):
    for sh in shapes(category):
        mesh = as_trimesh(sh)
        assert mesh.is_watertight and mesh.is_winding_consistent, sh.id
        assert mesh.volume > 0, f"{sh.id}: faces point inwards"
        assert len(trimesh.graph.connected_components(mesh.face_adjacency, nodes=np.arange(len(sh.faces)))) == 1
        assert len(np.unique(sh.faces)) == len(sh.vertices), f"{sh.id}: unreferenced vertices"
        assert sh.vertices.dtype == np.float64 and sh.vertices.shape[1] == 3
        assert sh.faces.dtype == np.int64 and sh.face_labels.dtype == np.int64
        assert sh.face_labels.shape == (len(sh.faces),)
        assert set(np.unique(sh.face_labels)) <= set(CATEGORIES[category].part_names)
        assert sh.points.dtype == np.float32 and np.array_equal(sh.points, sh.vertices.astype(np.float32))
        assert 1000 <= len(sh.faces) <= 12000
        # ShapeNetCore.v2 frame: bounding-box centre at the origin, diagonal 1.
        lo, hi = sh.vertices.min(0), sh.vertices.max(0)
        np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-9)
        assert np.linalg.norm(hi - lo) == pytest.approx(1.0)


@pytest.mark.parametrize("category", NAMES)
def test_geodesic_distances_are_finite_everywhere(category):
    for seed in SEEDS[:3]:
        sh = shape(category, seed)
        dist = pp3d.MeshHeatMethodDistanceSolver(sh.vertices, sh.faces).compute_distance(0)
        assert np.isfinite(dist).all(), sh.id
        assert (dist[1:] > 0).all()


@pytest.mark.parametrize("category", SYMMETRIC)
def test_mesh_is_exactly_mirror_symmetric(category):
    for sh in shapes(category)[:8]:
        np.testing.assert_array_equal(sh.symmetry_plane, [1.0, 0.0, 0.0, 0.0])
        dist, index = cKDTree(sh.vertices).query(sh.vertices * MIRROR)
        assert dist.max() < 1e-12, sh.id
        # Each face has a mirror image with the same part label.
        centroids = sh.vertices[sh.faces].mean(1)
        dist, index = cKDTree(centroids).query(centroids * MIRROR)
        assert dist.max() < 1e-12
        np.testing.assert_array_equal(sh.face_labels[index], sh.face_labels)


# --- keypoints -------------------------------------------------------------------

@pytest.mark.parametrize("category", NAMES)
def test_keypoints_lie_on_the_surface_with_valid_ids(category):
    names = CATEGORIES[category].keypoint_names
    for sh in shapes(category):
        assert sh.keypoints.dtype == np.float32 and sh.keypoint_ids.dtype == np.int64
        assert 8 <= sh.num_keypoints <= 20, sh.id
        assert np.all(np.diff(sh.keypoint_ids) > 0), "ids must be unique (and sorted)"
        assert set(sh.keypoint_ids.tolist()) <= set(names)
        _, dist, _ = trimesh.proximity.closest_point(as_trimesh(sh), sh.keypoints.astype(np.float64))
        assert dist.max() < 1e-5, sh.id


@pytest.mark.parametrize("category", SYMMETRIC)
def test_symmetric_keypoints_mirror_each_other(category):
    spec = CATEGORIES[category]
    for sh in shapes(category):
        where = {int(i): p.astype(np.float64) for i, p in zip(sh.keypoint_ids, sh.keypoints)}
        expected = [(a, b) for a, b in spec.symmetric_pairs if a in where and b in where]
        assert sorted(map(tuple, sh.symmetric_pairs.tolist())) == sorted(expected)
        for a, b in expected:
            np.testing.assert_allclose(where[a] * MIRROR, where[b], atol=1e-6)
            assert abs(where[a][0]) > 1e-3, f"{sh.id}: pair ({a}, {b}) collapsed onto the plane"
        # A pair is never half there: its part is mirrored as a whole.
        for a, b in spec.symmetric_pairs:
            assert (a in where) == (b in where)
        for i in set(where) - {i for pair in spec.symmetric_pairs for i in pair}:
            assert where[i][0] == 0.0, f"{sh.id}: keypoint {i} should lie on the symmetry plane"


def _face_label_at(sh, points):
    _, _, face = trimesh.proximity.closest_point(as_trimesh(sh), points)
    return sh.face_labels[face]


@pytest.mark.parametrize(("category", "ids", "part"), [
    ("chair", [17, 18, 19, 20, 10, 11, 12, 13, 14], "leg"),
    ("chair", [0, 1], "back"),
    ("chair", [4, 5], "seat"),
    ("table", [0, 1, 2, 3, 12], "top"),
    ("table", [4, 5, 6, 7, 8, 9, 10, 11], "leg"),
    ("airplane", [3, 5], "wing"),
    ("airplane", [0, 1], "body"),
    ("airplane", [7, 8, 10, 11], "tail"),
    ("airplane", [14, 15, 16, 17], "engine"),
    ("mug", [10], "handle"),
    ("mug", [1, 2, 3, 5, 6, 7, 11, 12], "body"),
    ("figure", [0], "head"),
    ("figure", [5, 6, 7, 8], "arm"),
    ("figure", [11, 12, 13, 14], "leg"),
])
def test_keypoints_sit_on_their_part(category, ids, part):
    label = {v: k for k, v in CATEGORIES[category].part_names.items()}[part]
    for sh in shapes(category):
        mask = np.isin(sh.keypoint_ids, ids)
        if mask.any():
            assert (_face_label_at(sh, sh.keypoints[mask].astype(np.float64)) == label).all(), sh.id


def test_keypoints_are_where_their_names_say():
    # The frame: y up, front towards -z, "right" is +x (KeypointNet's chairs and airplanes).
    for sh in shapes("chair"):
        p = {int(i): k for i, k in zip(sh.keypoint_ids, sh.keypoints)}
        assert p[0][1] > p[4][1] > max(p.get(17, p.get(12))[1], -1)  # back top above seat above feet
        assert p[0][0] > 0 and p[4][2] < p[2][2]  # right is +x; seat front before seat back
    for sh in shapes("airplane"):
        p = {int(i): k for i, k in zip(sh.keypoint_ids, sh.keypoints)}
        assert p[0][2] < p[6][2] < p[2][2]  # nose, wing root, tail along +z
        assert p[5][0] == sh.keypoints[:, 0].max()  # the right wing tip is the rightmost keypoint
    for sh in shapes("mug"):
        p = {int(i): k for i, k in zip(sh.keypoint_ids, sh.keypoints)}
        assert p[10][2] == sh.vertices[:, 2].max() or p[10][2] > p[0][2]  # handle sticks out at +z
        assert p[8][1] > p[9][1] and p[0][1] > p[11][1] > p[12][1]


def test_figure_instances_are_asymmetric_and_its_deformation_space_symmetric():
    figures = shapes("figure")
    for sh in figures:
        n, d = sh.symmetry_plane[:3], sh.symmetry_plane[3]
        np.testing.assert_array_equal(n, [1.0, 0.0, 0.0])
        assert sorted(map(tuple, sh.symmetric_pairs.tolist())) == list(CATEGORIES["figure"].symmetric_pairs)
        # Torso keypoints (head top, neck, pelvis) lie on the deformation space's plane.
        p = {int(i): k.astype(np.float64) for i, k in zip(sh.keypoint_ids, sh.keypoints)}
        for i in (0, 1, 2):
            assert abs(p[i] @ n + d) < 0.02, (sh.id, i)
        # Limbs pose independently: the mirror image of a hand is not the other hand.
        reflected = p[7] - 2 * (p[7] @ n + d) * n
        assert np.linalg.norm(reflected - p[8]) > 1e-3, sh.id
        # The rest-pose mid-plane is where the shoulders and hips pair up: the reflection of a shoulder
        # is the other shoulder (they sit on the girdle, whatever the arms do).
        np.testing.assert_allclose(p[3] - 2 * (p[3] @ n + d) * n, p[4], atol=0.02)
    # Left and right limb poses come from the same distribution but are drawn separately.
    left = np.array([f.meta["pose"]["left"]["elbow"] for f in figures])
    right = np.array([f.meta["pose"]["right"]["elbow"] for f in figures])
    assert not np.allclose(left, right) and abs(left.mean() - right.mean()) < 25


# --- variation and part presence ---------------------------------------------------

def test_chair_variants_and_their_ids():
    chairs = shapes("chair")
    assert {c.meta["variant"] for c in chairs} == {"four-leg", "swivel"}
    assert {c.meta["arms"] for c in chairs} == {True, False}
    assert {c.meta["back"] for c in chairs} == {"solid", "frame"}
    for c in chairs:
        ids = set(c.keypoint_ids.tolist())
        assert ({17, 18, 19, 20} <= ids) == (c.meta["variant"] == "four-leg")
        assert not ({10, 11, 12, 13, 14, 15, 16} & ids) == (c.meta["variant"] == "four-leg")
        assert ({6, 7, 8, 9} <= ids) == c.meta["arms"] and (not {6, 7, 8, 9} & ids) == (not c.meta["arms"])


def test_airplane_variants_and_their_ids():
    planes = [shape("airplane", s) for s in range(40)]
    assert {p.meta["engines"] for p in planes} == {0, 2, 4}
    assert {p.meta["variant"] for p in planes} == {"conventional", "t-tail", "twin"}
    for p in planes:
        ids = set(p.keypoint_ids.tolist())
        assert len(ids & {14, 15, 16, 17}) == p.meta["engines"]
        assert ({10, 11} <= ids) == (p.meta["variant"] == "twin") == (9 not in ids)


def test_table_and_mug_variants():
    tables = shapes("table")
    assert {t.meta["variant"] for t in tables} == {"four-leg", "pedestal"}
    assert {t.meta["top"] for t in tables} == {"round", "rectangular"}
    for t in tables:
        ids = set(t.keypoint_ids.tolist())
        assert ({4, 5, 6, 7} <= ids) == (t.meta["variant"] == "four-leg") == (not {8, 9, 10, 11, 13} & ids)
    assert {m.meta["variant"] for m in shapes("mug")} == {"round-handle", "square-handle"}


@pytest.mark.parametrize("category", NAMES)
def test_proportions_vary(category):
    extents = np.array([s.vertices.max(0) - s.vertices.min(0) for s in shapes(category)])
    assert len(np.unique(extents.round(3), axis=0)) == len(extents)
    assert (extents.std(0) > 0.01).all()


# --- seeding -----------------------------------------------------------------------

@pytest.mark.parametrize("category", NAMES)
def test_same_seed_same_shape_other_seed_other_shape(category):
    a, b = generate_shape(category, 3), shape(category, 3)
    assert a is not b and a.id == b.id == f"{category}-000003" and a.category == category
    for key in ("vertices", "faces", "face_labels", "keypoints", "keypoint_ids", "symmetric_pairs"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert a.meta == b.meta
    c = shape(category, 4)
    assert a.vertices.shape != c.vertices.shape or not np.array_equal(a.vertices, c.vertices)


def _digest(sh) -> str:
    arrays = (sh.vertices, sh.faces, sh.face_labels, sh.keypoints, sh.keypoint_ids, sh.symmetric_pairs)
    return hashlib.sha1(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()


def test_shapes_do_not_depend_on_the_process():
    # manifold3d numbers meshes with a process-wide counter; output must not depend on it.
    code = ("from kptool.data.synthetic import generate_shape; "
            f"from test_synthetic import _digest; print(*(_digest(generate_shape(c, 5)) for c in {NAMES!r}))")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parent).stdout.split()
    assert fresh == [_digest(shape(c, 5)) for c in NAMES]


def test_generate_category_uses_per_index_seeds():
    got = list(generate_category("table", 3, seed=2))
    assert [s.id for s in got] == [f"table-{shape_seed(2, i):06d}" for i in range(3)]
    assert shape_seed(0, 5) == 5 and shape_seed(2, 0) != shape_seed(0, 2)
    # Shape i does not depend on how many shapes are asked for.
    again = list(generate_category("table", 2, seed=2))
    for x, y in zip(got, again):
        np.testing.assert_array_equal(x.vertices, y.vertices)
    assert [s.id for s in generate_category("mug", 2)] == ["mug-000000", "mug-000001"]


def test_user_errors_are_one_line():
    with pytest.raises(KptoolError, match="unknown shape category 'sofa'.*chair"):
        generate_shape("sofa", 0)
    with pytest.raises(KptoolError, match="seed"):
        generate_shape("chair", -1)
    with pytest.raises(KptoolError, match="count"):
        generate_category("chair", -2)
    with pytest.raises(KptoolError, match="at most"):
        generate_category("chair", 2_000_000)


# --- helpers against hand-worked cases and plain references ------------------------

def test_closest_on_segments_hand_worked():
    a = np.array([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    b = np.array([[0.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    np.testing.assert_allclose(closest_on_segments(a, b, np.array([1.0, 0.5, 0.0])), [0.0, 0.5, 0.0])
    np.testing.assert_allclose(closest_on_segments(a, b, np.array([0.0, 3.0, 2.0])), [0.0, 2.0, 1.0])


def test_mirror_half_rebuilds_a_box():
    import manifold3d

    half = manifold3d.Manifold.cube([2.0, 1.0, 1.0], True).trim_by_plane([1.0, 0.0, 0.0], 0.0).to_mesh64()
    faces = np.asarray(half.tri_verts, np.int64)
    v, f, labels, seam = mirror_half(np.asarray(half.vert_properties, float)[:, :3], faces, np.ones(len(faces), int))
    box = trimesh.Trimesh(v, f, process=False)
    assert box.is_watertight and box.is_winding_consistent
    assert box.volume == pytest.approx(2.0) and box.area == pytest.approx(10.0)
    assert len(labels) == len(f) and (v[seam][..., 0] == 0).all() and len(seam) >= 4


def test_check_mesh_rejects_open_and_split_meshes():
    cube = trimesh.creation.box()
    v, f = np.asarray(cube.vertices, float), np.asarray(cube.faces, np.int64)
    require_closed_connected(v, f)
    with pytest.raises(BuildFailed, match="watertight"):
        require_closed_connected(v, f[1:])
    with pytest.raises(BuildFailed, match="watertight"):
        require_closed_connected(v, np.concatenate([f[:1, ::-1], f[1:]]))
    with pytest.raises(BuildFailed, match="2 connected components"):
        require_closed_connected(np.concatenate([v, v + 3]), np.concatenate([f, f + len(v)]))
