"""Frames and normalisation; the definitions live in :mod:`kptool.core.transform`."""

from kptool.core.transform import (NORMALIZATIONS, UP_AXES, Transform, canonical_frame, detection_frame,
                                   normalization, skeleton_merger_nfact, up_rotation)

__all__ = ["NORMALIZATIONS", "UP_AXES", "Transform", "canonical_frame", "detection_frame", "normalization",
           "skeleton_merger_nfact", "up_rotation"]
