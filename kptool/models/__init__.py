"""Learned keypoint models, built by name from the ``model:`` section of a preset.

Every model follows the contract of :class:`kptool.models.base.Model`: it declares the
batch fields it reads and the outputs it returns, and implements
``training_loss(batch) -> (loss, parts)`` and ``predict(batch) -> {kind: tensor}``.
See docs/architecture.md and docs/models.md.
"""

from kptool.models.base import BATCH_FIELDS, OUTPUT_KINDS, Model
from kptool.models.registry import MODELS, build_model, register_model, upgrade_model_config
from kptool.models.embedding import DenseEmbedding
from kptool.models.classifier import ShapeClassifier
from kptool.models.pretext import PointPretext
from kptool.models.skeleton_merger import SkeletonMerger
from kptool.models.skeleton_mutual import SkeletonMutual
from kptool.models.symmetric_basis import SymmetricBasisKeypoints
from kptool.models.usip import USIPKeypoints
from kptool.models.viewpoint import ViewpointNet
from kptool.models.heatmap2d import HeatmapKeypoints2D
from kptool.models.reconstruction import SketchEstimator, VoxelEstimator

__all__ = ["MODELS", "Model", "BATCH_FIELDS", "OUTPUT_KINDS", "build_model", "register_model", "upgrade_model_config",
           "SkeletonMerger", "SkeletonMutual", "DenseEmbedding", "SymmetricBasisKeypoints", "USIPKeypoints",
           "PointPretext", "ShapeClassifier", "ViewpointNet", "HeatmapKeypoints2D", "SketchEstimator", "VoxelEstimator"]
