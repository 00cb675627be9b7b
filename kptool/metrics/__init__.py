"""Keypoint evaluation metrics (definitions: docs/metrics.md).

All functions take per-shape numpy arrays (lists, since counts vary between
shapes) in one common frame and return plain results:

- :func:`dual_alignment_score` -> :class:`DASResult` (forward, backward, das; per slot
  :class:`SlotAlignment` and per id :class:`IdAlignment`)
- :func:`miou_curve` (Euclidean, Skeleton Merger) and :func:`geodesic_miou_curve`
  (KeypointNet) -> :class:`Curve`
- :func:`part_correspondence_ratio` -> :class:`PartCorrespondence`
- :func:`repeatability` -> :class:`Curve` over perturbation levels
"""

from kptool.metrics.alignment import DASResult, IdAlignment, SlotAlignment, dual_alignment_score
from kptool.metrics.curve import Curve
from kptool.metrics.miou import (KEYPOINTNET_THRESHOLDS, SKELETON_MERGER_THRESHOLDS, geodesic_miou_curve,
                                 miou_curve)
from kptool.metrics.parts import PartCorrespondence, keypoint_part_labels, part_correspondence_ratio
from kptool.metrics.repeatability import DEFAULT_LEVELS, PERTURBATIONS, perturb, repeatability

__all__ = [
    "DASResult", "SlotAlignment", "IdAlignment", "dual_alignment_score", "Curve", "miou_curve", "geodesic_miou_curve",
    "SKELETON_MERGER_THRESHOLDS", "KEYPOINTNET_THRESHOLDS", "PartCorrespondence",
    "part_correspondence_ratio", "keypoint_part_labels", "repeatability", "perturb",
    "PERTURBATIONS", "DEFAULT_LEVELS",
]

from kptool.metrics.registry import METRICS, EvalContext, Metric, build_metric, register_metric  # noqa: E402
from kptool.metrics import registered as _registered  # noqa: E402,F401  (registers das, miou, ...)
from kptool.metrics import mge_metric as _mge_metric  # noqa: E402,F401  (registers mge)
from kptool.metrics import shape_properties as _shape_properties  # noqa: E402,F401  (coverage, ..., registration)
from kptool.metrics import classification as _classification, probe as _probe  # noqa: E402,F401  (class-accuracy, svm-cv)

__all__ += ["METRICS", "Metric", "EvalContext", "build_metric", "register_metric"]
