"""Reading and writing shapes, annotations and keypoints.

Readers return :class:`kptool.core.Shape`; every problem with a user's file
raises :class:`kptool.errors.InputError` naming the file. Writers are atomic and
refuse to replace an existing file unless ``overwrite=True``.
"""

from kptool.io.datasets import KeypointAnnotation, read_keypointnet_annotations, read_shapenet_part
from kptool.io.shapes import SUFFIXES, load_mesh, load_points, load_shape
from kptool.io.writers import keypoint_colors, write_keypoints, write_points_ply

__all__ = [
    "SUFFIXES", "KeypointAnnotation", "keypoint_colors", "load_mesh", "load_points", "load_shape",
    "read_keypointnet_annotations", "read_shapenet_part", "write_keypoints", "write_points_ply",
]
