"""Training losses (channel-last tensors, any device) and the :data:`LOSSES` registry of objectives."""

from kptool.losses.chamfer import composite_chamfer_distance, composite_chamfer_distance_reference
from kptool.losses.registry import LOSSES
from kptool.losses.embedding import GeodesicConsistency, geodesic_consistency_loss  # registers it
from kptool.losses.pretext import GMMLikelihood, Jigsaw3D  # registers them
from kptool.losses.shape_basis import ShapeBasisLoss, USIPLoss  # registers them
from kptool.losses.skeleton import MutualReconstruction, SkeletonReconstruction  # registers them

__all__ = ["LOSSES", "composite_chamfer_distance", "composite_chamfer_distance_reference",
           "SkeletonReconstruction", "MutualReconstruction", "GeodesicConsistency", "geodesic_consistency_loss",
           "ShapeBasisLoss", "USIPLoss", "GMMLikelihood", "Jigsaw3D"]
