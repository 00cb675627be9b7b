"""USIP (Li and Lee, ICCV 2019) trained per category: the baseline of Fernandez-Labrador et al.

The node branch of :mod:`kptool.models.node_branch` with a fourth output per node, the
uncertainty ``sigma = softplus(.) + 1e-4``. Training is siamese: two random subsets of one
shape's points, the second turned about the up axis by a known random angle; the
keypoints of the second, turned back, are compared with the first's by the probabilistic
Chamfer loss, and each keypoint is pulled towards its cloud (mean nearest distance). At
inference the keypoints are the nodes in their seed order (no semantic order) and
:func:`sigma_nms` keeps, among keypoints within a radius, the most certain one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from kptool.losses.registry import LOSSES
from kptool.models.base import Model
from kptool.models.node_branch import NodeBranch
from kptool.models.registry import register_model
from kptool.models.symmetric_basis import random_up_rotation


def sigma_nms(keypoints, sigma, radius: float) -> np.ndarray:
    """Indices of the keypoints kept by USIP's NMS, most certain first.

    Keypoints are visited by increasing ``sigma``; one is kept unless a kept keypoint lies
    within ``radius`` of it. ``keypoints`` ``(K, 3)``, ``sigma`` ``(K,)``.
    """
    k, s = np.asarray(keypoints, np.float64), np.asarray(sigma, np.float64)
    kept: list[int] = []
    for i in np.argsort(s, kind="stable"):
        if all(np.linalg.norm(k[i] - k[j]) > radius for j in kept):
            kept.append(int(i))
    return np.array(kept, dtype=np.int64)


@register_model("usip")
class USIPKeypoints(Model):
    """USIP trained per category (paper 001's baseline): unordered keypoints with uncertainties sigma.

    ``(B, N, 3)`` -> keypoints ``(B, M, 3)`` in seed order and sigma ``(B, M)``.

    Args:
        num_keypoints: M nodes.
        rotation_deg: the siamese pair's known rotation about up, uniform within this angle.
        misalignment_deg: both views also turned by up to this angle (as the shape-basis model's inputs).
        subset: share of the points in each view.
        loss: the ``loss:`` section (``usip``: ``point_to_point`` weight of the keypoint-to-cloud term).
    """

    inputs = ("points",)
    outputs = ("keypoints",)
    details = ("sigma",)
    ordered = False          # keypoints come in seed order: no index has a meaning across shapes

    def __init__(self, num_keypoints: int = 14, rotation_deg: float = 180.0, misalignment_deg: float = 45.0,
                 subset: float = 0.75, loss: dict | None = None):
        super().__init__()
        self.num_keypoints = int(num_keypoints)
        self.rotation_deg, self.misalignment_deg = float(rotation_deg), float(misalignment_deg)
        self.subset = float(subset)
        self.objective = LOSSES.build({"name": "usip", **(loss or {})})
        self.nodes = NodeBranch(num_keypoints, extra_outputs=1)

    def forward(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.nodes(points)
        return {"keypoints": out.nodes, "sigma": F.softplus(out.extra[..., 0]) + 1e-4}

    def _view(self, points: torch.Tensor) -> torch.Tensor:
        b, n, _ = points.shape
        keep = max(int(round(self.subset * n)), 4 * self.num_keypoints)
        order = torch.argsort(torch.rand(b, n), dim=1)[:, :keep].to(points.device)
        return torch.gather(points, 1, order[..., None].expand(-1, -1, 3))

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        points = batch["points"]
        if self.misalignment_deg > 0:
            points = points @ random_up_rotation(len(points), self.misalignment_deg).to(points).transpose(1, 2)
        rot = random_up_rotation(len(points), self.rotation_deg).to(points)          # (B, 3, 3)
        first, second = self._view(points), self._view(points) @ rot.transpose(1, 2)
        a, b = self(first), self(second)
        # the second view's keypoints and points turned back into the first view's frame
        return self.objective(a["keypoints"], a["sigma"], b["keypoints"] @ rot, b["sigma"], first, second @ rot)

    def infer(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self(batch["points"])

    def shape_details(self, predicted: dict[str, Any], points: Any) -> dict[str, Any]:
        """Sigmas plus ``kept``: the keypoints USIP's NMS keeps (radius 0.2 in the authors' frame), most certain first."""
        from kptool.metrics.properties import MERGE_RADIUS, frame_scale

        kept = sigma_nms(predicted["keypoints"], predicted["sigma"], MERGE_RADIUS * frame_scale(points))
        return {"sigma": predicted["sigma"], "kept": kept}
