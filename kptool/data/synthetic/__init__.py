"""Built-in procedural shape categories: chair, table, airplane, mug, figure (articulated).

Every shape is one connected, watertight triangle mesh with per-face part labels,
semantic keypoints on its surface with ids consistent across the category
(KeypointNet style: an id is absent when its part is), and its reflective
symmetry plane x = 0 with the keypoint pairs it swaps (for the articulated figure,
whose instances are asymmetric, the plane of its symmetric deformation space). Frame: ShapeNetCore.v2 /
KeypointNet, y up, x left-right (symmetric), front towards -z as in KeypointNet's
annotated chairs and airplanes; bounding-box centre at the origin, diagonal 1.

Shapes are deterministic functions of ``(category, seed)``; shape ``i`` of a
category set generated with seed ``s`` uses ``shape_seed(s, i)``, so it does not
depend on how many shapes are made or by which worker.

>>> shape = generate_shape("chair", 7)
>>> CATEGORIES["chair"].keypoint_names[int(shape.keypoint_ids[0])]
'back top right'
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from kptool.core.shape import Shape
from kptool.data.synthetic import airplane, chair, figure, mug, table
from kptool.data.synthetic._build import Assembly, BuildFailed, CategorySpec
from kptool.errors import KptoolError

__all__ = ["CATEGORIES", "CategorySpec", "generate_category", "generate_shape", "shape_seed"]

CATEGORIES: dict[str, CategorySpec] = {spec.name: spec for spec in (chair.SPEC, table.SPEC, airplane.SPEC, mug.SPEC,
                                                             figure.SPEC)}

# Shape i of a set made with seed s gets seed s * SEED_STRIDE + i: readable ids
# ("chair-000042" for s = 0) and no overlap between sets of fewer shapes than this.
SEED_STRIDE = 1_000_000
MAX_ATTEMPTS = 8


def _spec(category: str) -> CategorySpec:
    try:
        return CATEGORIES[category]
    except KeyError:
        raise KptoolError(f"unknown shape category {category!r}: expected one of {', '.join(CATEGORIES)}") from None


def shape_seed(seed: int, index: int) -> int:
    """Seed of shape ``index`` in a set generated with ``seed``."""
    if not 0 <= index < SEED_STRIDE:
        raise KptoolError(f"shape index {index} out of range: at most {SEED_STRIDE} shapes per seed")
    if seed < 0:
        raise KptoolError(f"seed must be >= 0, got {seed}")
    return seed * SEED_STRIDE + index


def generate_shape(category: str, seed: int) -> Shape:
    """Generate one shape of a built-in category, deterministically from ``seed``.

    Returns a :class:`~kptool.data.Shape` with ``vertices`` ``(V, 3)`` float64,
    ``faces`` ``(F, 3)`` int64, ``points`` (the vertices as float32),
    ``face_labels`` ``(F,)`` int64 (1-based, ``CATEGORIES[category].part_names``),
    ``keypoints`` ``(K, 3)`` float32 on the surface with ``keypoint_ids`` ``(K,)``
    int64 (sorted, ``CATEGORIES[category].keypoint_names``), ``symmetry_plane``
    ``(1, 0, 0, 0)`` (the plane x = 0; the figure's rest-pose mid-plane), ``symmetric_pairs`` ``(P, 2)`` int64 id
    pairs, ``id`` ``f"{category}-{seed:06d}"`` and ``meta`` describing the variant.
    """
    spec = _spec(category)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise KptoolError(f"seed must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    # A draw of parameters can, rarely, leave a part detached; draw again from the
    # same stream so the result is still a function of the seed.
    for attempt in range(MAX_ATTEMPTS):
        asm = Assembly(pairs=spec.partner(), symmetric=spec.symmetric)
        meta = spec.build(rng, asm)
        try:
            built = asm.finish()
            break
        except BuildFailed:
            continue
    else:
        raise RuntimeError(f"{category} seed {seed}: no valid shape in {MAX_ATTEMPTS} draws")
    meta.update(source="kptool.data.synthetic", seed=int(seed), attempts=attempt + 1)
    return Shape(
        points=built.vertices.astype(np.float32),
        id=f"{category}-{int(seed):06d}",
        category=category,
        vertices=built.vertices,
        faces=built.faces,
        face_labels=built.face_labels,
        keypoints=built.keypoints.astype(np.float32),
        keypoint_ids=built.keypoint_ids,
        symmetry_plane=built.symmetry_plane,
        symmetric_pairs=built.symmetric_pairs,
        meta=meta,
    )


def generate_category(category: str, count: int, seed: int = 0) -> Iterator[Shape]:
    """Iterate over ``count`` shapes; shape ``i`` is ``generate_shape(category, shape_seed(seed, i))``.

    Arguments are checked at once, shapes are made as they are asked for.
    """
    _spec(category)
    if count < 0:
        raise KptoolError(f"shape count must be >= 0, got {count}")
    shape_seed(seed, max(count - 1, 0))
    return (generate_shape(category, shape_seed(seed, i)) for i in range(count))
