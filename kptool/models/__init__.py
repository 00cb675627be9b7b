"""Learned keypoint models, built by name from the ``model:`` section of a preset.

Every keypoint model is an ``nn.Module`` with ``num_keypoints``, ``paired`` (True:
shape i of a training batch is paired with shape i + B/2), ``forward(points)`` ->
dict with ``keypoints (B, K, 3)``, ``training_loss(points)`` -> (loss, components)
and ``detect(points)`` -> ``(B, K, 3)``. See docs/models.md.
"""

from kptool.models.registry import MODELS, build_model, register_model
from kptool.models.skeleton_merger import SkeletonMerger
from kptool.models.skeleton_mutual import SkeletonMutual

__all__ = ["MODELS", "build_model", "register_model", "SkeletonMerger", "SkeletonMutual"]
