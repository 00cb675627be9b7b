"""Point-cloud backbones shared by keypoint detectors, embedding networks and pre-training.

Backbones are registered in :data:`BACKBONES` and built from a preset's ``backbone:``
section (``{name: ..., **kwargs}``).
"""

from kptool.registry import Registry

BACKBONES = Registry("backbone")

from kptool.models.backbones.pointnet2 import PointNet2MSG  # noqa: E402  (registers itself)

__all__ = ["BACKBONES", "PointNet2MSG"]
