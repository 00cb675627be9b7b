"""Training losses (channel-last tensors, any device)."""

from kptool.losses.chamfer import composite_chamfer_distance, composite_chamfer_distance_reference

__all__ = ["composite_chamfer_distance", "composite_chamfer_distance_reference"]
