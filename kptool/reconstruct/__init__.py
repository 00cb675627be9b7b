"""Single-view reconstruction (paper 004's 2D -> 3D stage, after ShapeHD): RGB -> 2.5D sketches
-> occupancy voxels in the canonical frame -> marching cubes -> surface samples.

- :mod:`~kptool.reconstruct.voxels`: voxel targets of a prepared dataset (``kptool prepare voxels``);
- :mod:`kptool.models.reconstruction`: the ``sketch`` and ``voxels-from-sketch`` models;
- :mod:`~kptool.reconstruct.surface`: marching cubes and surface samples;
- :mod:`~kptool.reconstruct.pipeline`: :func:`load_reconstructor` -> a :class:`Reconstructor`;
- :mod:`~kptool.reconstruct.quality`: voxel IoU and Chamfer distance on renders (``kptool eval reconstruction``).

See docs/reconstruction.md.
"""

from importlib import import_module

_EXPORTS = {"Reconstruction": "pipeline", "Reconstructor": "pipeline", "load_reconstructor": "pipeline",
            "voxels_to_mesh": "surface", "surface_samples": "surface", "canonical_frame": "voxels",
            "voxelise": "voxels"}


def __getattr__(name: str):
    # lazy: kptool.models imports kptool.reconstruct.voxels, and the pipeline imports kptool.models
    if name in _EXPORTS:
        return getattr(import_module(f"kptool.reconstruct.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'kptool.reconstruct' has no attribute {name!r}")


__all__ = ["Reconstruction", "Reconstructor", "load_reconstructor", "voxels_to_mesh", "surface_samples",
           "canonical_frame", "voxelise"]
