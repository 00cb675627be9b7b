"""Point-cloud backbones shared by keypoint detectors, embedding networks and pre-training."""

from kptool.models.backbones.pointnet2 import PointNet2MSG

__all__ = ["PointNet2MSG"]
