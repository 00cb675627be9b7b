"""From an occupancy grid to a surface: marching cubes (scikit-image), a trimesh mesh, surface samples.

Level: 0.5 on probabilities (the decision boundary of a BCE-trained occupancy). The
authors' code thresholds ShapeHD's output at 0.1, a level tuned to ShapeHD's 128^3
output (it fattens thin parts such as chair legs, which a low level keeps connected);
pass ``level=0.1`` for their setting.
"""

from __future__ import annotations

import numpy as np

from kptool.errors import KptoolError

LEVEL = 0.5
SAMPLES = 2048


def voxels_to_mesh(occupancy: np.ndarray, level: float = LEVEL):
    """Marching cubes of an ``(R, R, R)`` occupancy grid (axes x, y, z of the canonical cube ``[-1, 1]^3``,
    :mod:`kptool.reconstruct.voxels`) -> a ``trimesh.Trimesh`` in the canonical frame.

    The grid is padded with one empty voxel on every side, so the surface is closed where the
    shape touches the cube. Raises KptoolError when no voxel reaches ``level`` (nothing to mesh).
    """
    import trimesh
    from skimage.measure import marching_cubes

    grid = np.asarray(occupancy, dtype=np.float32)
    if grid.ndim != 3 or len(set(grid.shape)) != 1:
        raise KptoolError(f"occupancy must be a cubic (R, R, R) grid, got {grid.shape}")
    if not 0 < level < 1:
        raise KptoolError(f"marching-cubes level must lie in (0, 1), got {level}")
    if not (grid >= level).any():
        raise KptoolError(f"empty reconstruction: no voxel has occupancy >= {level}")
    r = grid.shape[0]
    verts, faces, _, _ = marching_cubes(np.pad(grid, 1), level=level)
    # padded index p is voxel p - 1, centred at -1 + (p - 1 + 0.5) 2 / R
    verts = -1 + (verts - 0.5) * (2 / r)
    # scikit-image orients faces for a field increasing outwards; occupancy decreases outwards
    return trimesh.Trimesh(verts, faces[:, ::-1], process=True)


def surface_samples(mesh, count: int = SAMPLES, seed: int = 0) -> np.ndarray:
    """``(count, 3)`` float32 points drawn uniformly by area on the mesh's surface (trimesh)."""
    import trimesh

    if count < 1:
        raise KptoolError(f"surface samples: count must be at least 1, got {count}")
    points, _ = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.asarray(points, dtype=np.float32)
