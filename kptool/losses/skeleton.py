"""Training objectives of the skeleton models, registered in :data:`kptool.losses.LOSSES`.

A loss object is built from a model's ``loss:`` section and called as
``loss(model, points) -> (scalar loss, named parts)``; ``paired`` says whether it
needs shape i of the batch paired with shape i + B/2, ``models`` which registered
models it can train (it uses their decoder and, for the mutual term, the
keypoint-offset MLP).
"""

from __future__ import annotations

import torch

from kptool.errors import KptoolError
from kptool.losses.registry import LOSSES


@LOSSES.register("skeleton-reconstruction")
class SkeletonReconstruction:
    """Skeleton Merger: composite Chamfer distance of the self-reconstruction + L2 on the decoder offsets.

    Args:
        offset_weight: weight of the penalty, a sum of squares over the whole offset table
            (reference 0.01).
    """

    paired = False
    models = ("skeleton-merger", "skeleton-mutual")

    def __init__(self, offset_weight: float = 0.01):
        self.name = "skeleton-reconstruction"
        self.offset_weight = float(offset_weight)

    def offset_penalty(self, model) -> torch.Tensor:
        return self.offset_weight * (model.decoder.offsets ** 2).sum()

    def __call__(self, model, points: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """``(B, N, 3)`` points -> mean CCD of the self-reconstructions + offset penalty, and the parts."""
        out = model(points)
        ccd = model.reconstruction_loss(points, out["keypoints"], out["activations"]).mean()
        penalty = self.offset_penalty(model)
        loss = ccd + penalty
        return loss, {"loss": loss.item(), "ccd_self": ccd.item(), "offset_l2": penalty.item()}


@LOSSES.register("mutual-reconstruction")
class MutualReconstruction(SkeletonReconstruction):
    """Mutual reconstruction (paper 000, eq. 9): self + partner reconstructions, offset and O_K penalties.

    Args:
        self_weight, mutual_weight: λs and λm (paper: 0.5, 0.5).
        offset_weight: weight of the decoder-offset penalty (reference 0.01).
        keypoint_offset_weight: weight of the L2 penalty on O_K (mean over pairs and
            keypoints of the squared norm; not given in the paper).
    """

    paired = True
    models = ("skeleton-mutual",)

    def __init__(self, self_weight: float = 0.5, mutual_weight: float = 0.5, offset_weight: float = 0.01,
                 keypoint_offset_weight: float = 1.0):
        super().__init__(offset_weight)
        self.name = "mutual-reconstruction"
        self.self_weight, self.mutual_weight = float(self_weight), float(mutual_weight)
        self.keypoint_offset_weight = float(keypoint_offset_weight)

    def __call__(self, model, points: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """``(B, N, 3)`` points, B even, shape i paired with shape i + B/2 -> loss and its parts."""
        if points.dim() == 3 and points.shape[0] % 2:
            raise KptoolError(f"{model.model_name} trains on pairs of shapes: the batch size must be even, "
                              f"got {points.shape[0]}")
        out = model(points)
        batch, half = points.shape[0], points.shape[0] // 2
        reshaped, offset = model.mutual_keypoints(out["keypoints"])
        # Self and mutual reconstructions go through the decoder and the CCD as one batch of
        # 2B, with the skeleton point counts of the self keypoints for both, so that the self
        # term does not depend on the pairing.
        counts = model.decoder.point_counts(out["keypoints"].detach())
        ccd = model.reconstruction_loss(points.repeat(2, 1, 1), torch.cat([out["keypoints"], reshaped]),
                                        out["activations"].repeat(2, 1), counts)
        ccd_self, ccd_mutual = ccd[:batch], ccd[batch:]
        rec_self = ccd_self[:half].mean() + ccd_self[half:].mean()
        rec_mutual = ccd_mutual[:half].mean() + ccd_mutual[half:].mean()
        penalty = self.offset_penalty(model)
        kp_penalty = self.keypoint_offset_weight * (offset ** 2).sum(-1).mean()
        loss = self.self_weight * rec_self + self.mutual_weight * rec_mutual + penalty + kp_penalty
        return loss, {"loss": loss.item(), "ccd_self": ccd_self.mean().item(),
                      "ccd_mutual": ccd_mutual.mean().item(), "offset_l2": penalty.item(),
                      "keypoint_offset_l2": kp_penalty.item()}
