"""Mutual reconstruction (Yuan et al., ECCV 2022): keypoints that also reconstruct another shape.

Skeleton Merger plus a second reconstruction per shape. Shapes come in pairs
(a, b) — in a batch of B, shape i is paired with shape i + B/2 (the training loop
splits the shuffled training set into two halves every epoch). With KP_a, KP_b
the encoder's keypoints (paper eqs. 2-5)::

    O_K   = MLP(KP_a - KP_b)          # per keypoint, 3 -> widths -> 3
    KP'_a = KP_b + O_K                # b's keypoints, reshaped towards a
    KP'_b = KP_a - O_K

and the shared decoder turns KP'_a into a reconstruction of a, scored with a's
own activation strengths (likewise for b), with as many points per skeleton as the
self reconstructions (the decoder's count rule applied to the encoder's keypoints).
The loss (paper eq. 9 plus regularisers)::

    λs [CCD(a, rec a) + CCD(b, rec b)] + λm [CCD(a, rec' a) + CCD(b, rec' b)]
      + offset_weight * |decoder offsets|^2 + keypoint_offset_weight * mean |O_K|^2

where each CCD is averaged over its half of the batch. The L2 penalty on O_K keeps
the reshaping small, so b's keypoints must themselves nearly fit a: that is what
makes keypoint i mean the same part on every shape.

The paper leaves the MLP's widths and the O_K penalty weight open and the authors'
code is not public; kptool's choices (widths 64, 64; weight 1 on the mean squared
norm) are recorded in docs/models.md.

``keypoint_alignment="axis-scale"`` (kptool's addition, opt-in; the default ``"none"``
is the paper's form) first stretches the partner's keypoints onto this shape's, one
positive scale and shift per axis (:func:`axis_scale_fit`), and applies O_K to what is
left; the penalty then falls on differences a stretch cannot explain (a swapped pair),
not on a longer fuselage.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn

from kptool.errors import KptoolError
from kptool.models.registry import register_model
from kptool.models.skeleton_merger import SkeletonMerger


ALIGNMENTS = ("none", "axis-scale")


def axis_scale_fit(source: torch.Tensor, target: torch.Tensor, min_scale: float = 0.25,
                   max_scale: float = 4.0) -> torch.Tensor:
    """``(B, k, 3)`` source keypoints mapped onto ``(B, k, 3)`` targets by a per-axis scale and shift.

    Least squares over the k keypoints, one positive scale per axis, clamped to
    ``[min_scale, max_scale]``: it follows a shape that is longer, wider or taller, but
    cannot mirror, so swapped left/right keypoints still leave a residual.
    """
    src_mean, dst_mean = source.mean(1, keepdim=True), target.mean(1, keepdim=True)
    src_c, dst_c = source - src_mean, target - dst_mean
    scale = (src_c * dst_c).sum(1, keepdim=True) / ((src_c ** 2).sum(1, keepdim=True) + 1e-6)
    scale = scale.clamp(min_scale, max_scale)
    return src_c * scale + dst_mean


class KeypointOffsetMLP(nn.Module):
    """``O_K = MLP(O_P)``: ``(..., 3)`` keypoint differences -> ``(..., 3)`` offsets, shared over keypoints."""

    def __init__(self, widths: Sequence[int] = (64, 64)):
        super().__init__()
        dims = [3, *widths, 3]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.layers = nn.Sequential(*layers[:-1])

    def forward(self, differences: torch.Tensor) -> torch.Tensor:
        return self.layers(differences)


@register_model("skeleton-mutual")
class SkeletonMutual(SkeletonMerger):
    """Mutual reconstruction (Yuan et al. 2022): Skeleton Merger whose keypoints also rebuild a partner shape.

    Args:
        keypoint_offset_widths: hidden widths of the offset MLP (3 layers in all).
        keypoint_alignment: ``"none"`` (the paper's eqs. 2-5) or ``"axis-scale"`` (see the
            module docstring).
        loss: default ``{name: mutual-reconstruction}`` (λs, λm and the penalty weights there).
        The other arguments are those of :class:`~kptool.models.skeleton_merger.SkeletonMerger`.
    """

    default_loss = "mutual-reconstruction"
    loss_keys = ("self_weight", "mutual_weight", "offset_weight", "keypoint_offset_weight")

    def __init__(self, num_keypoints: int = 10, backbone: Mapping[str, Any] | None = None,
                 activation_widths: Sequence[int] = (512, 256), head_width: int = 128, dropout: float = 0.5,
                 skeleton_max_points: int = 200, skeleton_min_points: int = 15, skeleton_spacing: float = 0.01,
                 offset_init: float = 0.002, keypoint_offset_widths: Sequence[int] = (64, 64),
                 keypoint_alignment: str = "none", loss: Mapping[str, Any] | None = None):
        super().__init__(num_keypoints, backbone, activation_widths, head_width, dropout, skeleton_max_points,
                         skeleton_min_points, skeleton_spacing, offset_init, loss)
        self.keypoint_offset = KeypointOffsetMLP(keypoint_offset_widths)
        if keypoint_alignment not in ALIGNMENTS:
            raise KptoolError(f"keypoint_alignment must be one of {', '.join(ALIGNMENTS)}, got {keypoint_alignment!r}")
        self.keypoint_alignment = keypoint_alignment

    def mutual_keypoints(self, keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, k, 3)`` keypoints of pairs ``(i, i + B/2)`` -> reshaped partner keypoints ``(B, k, 3)``
        (row i reconstructs shape i) and the penalised offsets ``O_K`` (``(B/2, k, 3)``; ``(B, k, 3)``
        with ``keypoint_alignment="axis-scale"``, one per direction)."""
        half = keypoints.shape[0] // 2
        kp_a, kp_b = keypoints[:half], keypoints[half:]
        if self.keypoint_alignment == "none":
            offset = self.keypoint_offset(kp_a - kp_b)
            return torch.cat([kp_b + offset, kp_a - offset]), offset
        # The partner's keypoints are first stretched onto this shape's (free), then O_K
        # covers what the stretch cannot: the penalty falls on non-affine differences only.
        source, target = torch.cat([kp_b, kp_a]), keypoints
        aligned = axis_scale_fit(source, target)
        offset = self.keypoint_offset(target - aligned)
        return aligned + offset, offset
