"""Point-cloud backbones shared by keypoint detectors, embedding networks and pre-training.

Backbones are registered in :data:`BACKBONES` and built from a preset's ``backbone:``
section (``{name: ..., **kwargs}``). All share one interface
(:mod:`kptool.models.backbones.common`)::

    per_point, global_ = backbone(xyz, features)   # (B, N, 3), (B, N, C) or None
    # -> (B, N, backbone.out_channels), (B, backbone.global_channels)

``pointnet``, ``pointnet2-ssg``, ``pointnet2-msg`` and ``dgcnn``; defaults are the
papers' segmentation networks.
"""

from kptool.registry import Registry

BACKBONES = Registry("backbone")

# Each module registers its classes on import.
from kptool.models.backbones.dgcnn import DGCNN  # noqa: E402
from kptool.models.backbones.pointnet import PointNet  # noqa: E402
from kptool.models.backbones.pointnet2 import PointNet2MSG, PointNet2SSG  # noqa: E402

__all__ = ["BACKBONES", "DGCNN", "PointNet", "PointNet2MSG", "PointNet2SSG"]
