"""Skeleton Merger (Shi et al., CVPR 2021): keypoints that reconstruct their shape as a skeleton.

Encoder: a PointNet++ MSG segmentation network (:class:`~kptool.models.backbones.PointNet2MSG`)
gives every point k scores; ``Linear(k, k)`` then a softmax over the points turns
them into k heat maps, and each keypoint is its heat map times the points (a
convex combination of the input points). The max-pooled deepest feature gives,
through an MLP, an activation strength in [0, 1] for each of the ``k(k-1)/2``
keypoint pairs.

Decoder (:class:`SkeletonDecoder`): one skeleton per keypoint pair — points evenly
spaced on the segment plus a learned per-pair offset table — trained with the
composite Chamfer distance (:func:`kptool.losses.composite_chamfer_distance`) and
an L2 penalty on the offsets.

Every value here defaults to the authors' code (``merger/merger_net.py``).
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from kptool.errors import KptoolError
from kptool.losses import LOSSES, composite_chamfer_distance
from kptool.models.backbones import BACKBONES
from kptool.models.backbones.common import SharedMLP
from kptool.models.base import Model
from kptool.models.registry import register_model

# Keys of kptool 0.1's flat model section that now live in the backbone: section.
LEGACY_BACKBONE_KEYS = ("set_abstraction", "feature_propagation", "interpolation_power")


def move_legacy_keys(section: dict[str, Any], backbone: str, loss: str, loss_keys: Sequence[str]) -> dict[str, Any]:
    """A flat kptool 0.1 model section with its backbone and loss keys moved into nested sections."""
    out = dict(section)
    if "backbone" not in out:
        out["backbone"] = {"name": backbone, **{k: out.pop(k) for k in LEGACY_BACKBONE_KEYS if k in out}}
        # kptool 0.1's encoder interpolated features with weights 1/d: a backbone with the
        # option keeps that for configs written before it existed
        if "interpolation_power" in inspect.signature(BACKBONES.get(backbone)).parameters:
            out["backbone"].setdefault("interpolation_power", 1)
    if "loss" not in out:
        out["loss"] = {"name": loss, **{k: out.pop(k) for k in loss_keys if k in out}}
    return out


class SkeletonDecoder(nn.Module):
    """Skeletons between keypoint pairs: the Skeleton Merger decoder.

    Pair ``p`` joins keypoints ``(i, j)``, ``j < i``, in the order
    ``(1,0), (2,0), (2,1), (3,0), ...``. It holds ``count_p`` points
    ``f * kp_i + (1 - f) * kp_j + offset_p[r]`` with ``f = r / (count_p - 1)``,
    ``r = 0..count_p-1``, where ``count_p = clamp(int(mean segment length / spacing),
    min_points, max_points)``, the length averaged over the batch as in the
    reference (one count per pair for the whole batch).

    Args:
        num_keypoints: k.
        max_points, min_points, spacing: the point-count rule (reference 200, 15, 0.01).
        offset_init: std of the initial offsets (reference 0.002).
    """

    def __init__(self, num_keypoints: int, max_points: int = 200, min_points: int = 15, spacing: float = 0.01,
                 offset_init: float = 0.002):
        super().__init__()
        if not 2 <= min_points <= max_points:
            raise KptoolError(f"skeleton point counts need 2 <= min_points <= max_points, "
                              f"got {min_points} and {max_points}")
        self.num_keypoints = int(num_keypoints)
        self.max_points, self.min_points, self.spacing = int(max_points), int(min_points), float(spacing)
        pairs = torch.tensor([(i, j) for i in range(num_keypoints) for j in range(i)], dtype=torch.long)
        self.register_buffer("pairs", pairs.reshape(-1, 2), persistent=False)
        self.offsets = nn.Parameter(torch.randn(len(pairs), self.max_points, 3) * offset_init)

    @property
    def num_pairs(self) -> int:
        return self.pairs.shape[0]

    def point_counts(self, keypoints: torch.Tensor) -> list[int]:
        """``(B, k, 3)`` keypoints -> points per skeleton, ``(P,)`` ints."""
        a, b = keypoints[:, self.pairs[:, 0]], keypoints[:, self.pairs[:, 1]]
        # 1e-3 inside the sqrt as in the reference (smooth length of a zero segment)
        length = torch.sqrt(1e-3 + ((a - b) ** 2).sum(-1)).mean(0)
        return (length / self.spacing).long().clamp(self.min_points, self.max_points).tolist()

    def forward(self, keypoints: torch.Tensor, counts: list[int] | None = None) -> tuple[torch.Tensor, list[int]]:
        """``(B, k, 3)`` keypoints -> ``(B, T, 3)`` skeleton points (skeleton after skeleton) and counts ``(P,)``
        (``counts`` given: those instead of :meth:`point_counts` of these keypoints)."""
        if counts is None:
            counts = self.point_counts(keypoints.detach())
        device = keypoints.device
        counts_t = torch.tensor(counts, device=device)
        pair_of = torch.repeat_interleave(torch.arange(self.num_pairs, device=device), counts_t)       # (T,)
        starts = torch.cumsum(counts_t, 0) - counts_t
        row = torch.arange(pair_of.shape[0], device=device) - starts[pair_of]                          # (T,)
        f = (row.to(keypoints.dtype) / (counts_t[pair_of] - 1).to(keypoints.dtype))[None, :, None]
        ends = self.pairs[pair_of]
        points = keypoints[:, ends[:, 0]] * f + keypoints[:, ends[:, 1]] * (1 - f) + self.offsets[pair_of, row]
        return points, counts


class MaskDropout(nn.Module):
    """Inverted dropout, as ``nn.Dropout``; the mask comes from ``rand_like`` because
    ``bernoulli_`` is ~3x slower on CPU and this layer runs on every point."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise KptoolError(f"dropout must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * (torch.rand_like(x) >= self.p).to(x.dtype).mul_(1.0 / (1.0 - self.p))


@register_model("skeleton-merger")
class SkeletonMerger(Model):
    """Skeleton Merger (Shi et al. 2021): keypoints whose skeletons reconstruct the shape.

    Args:
        num_keypoints: k (reference 10).
        backbone: the ``backbone:`` section (default ``{name: pointnet2-msg}``, the
            reference network; its ``in_channels`` is 9, set here); smaller levels make fast tests.
        activation_widths: hidden widths of the activation-strength MLP (reference 512, 256).
        head_width: width of the per-point layer before the k scores (reference 128).
        dropout: dropout before the k scores (reference 0.5).
        skeleton_max_points, skeleton_min_points, skeleton_spacing, offset_init: decoder,
            see :class:`SkeletonDecoder`.
        loss: the ``loss:`` section, a :data:`kptool.losses.LOSSES` entry (default
            ``{name: skeleton-reconstruction}``: self-reconstruction and the offset penalty).
    """

    outputs = ("keypoints",)
    default_loss = "skeleton-reconstruction"
    loss_keys: tuple[str, ...] = ("offset_weight",)

    def __init__(self, num_keypoints: int = 10, backbone: Mapping[str, Any] | None = None,
                 activation_widths: Sequence[int] = (512, 256), head_width: int = 128, dropout: float = 0.5,
                 skeleton_max_points: int = 200, skeleton_min_points: int = 15, skeleton_spacing: float = 0.01,
                 offset_init: float = 0.002, loss: Mapping[str, Any] | None = None):
        super().__init__()
        if isinstance(num_keypoints, bool) or not isinstance(num_keypoints, int) or num_keypoints < 2:
            raise KptoolError(f"{self.model_name} needs an integer num_keypoints >= 2 (one skeleton per keypoint "
                              f"pair), got {num_keypoints!r}")
        k = self.num_keypoints = num_keypoints
        backbone = dict(backbone or {"name": "pointnet2-msg"})
        if "in_channels" in backbone:
            raise KptoolError(f"{self.model_name}: backbone.in_channels is set by the model (9), leave it out")
        self.loss = LOSSES.build(dict(loss or {"name": self.default_loss}))
        if self.model_name not in self.loss.models:
            raise KptoolError(f"loss {self.loss.name!r} does not fit model {self.model_name!r} "
                              f"(it trains {', '.join(self.loss.models)})")
        # The reference feeds the coordinates three times as 9 input channels.
        self.backbone = BACKBONES.build({**backbone, "in_channels": 9})
        self.head = SharedMLP(self.backbone.out_channels, (head_width,))
        self.dropout = MaskDropout(dropout)
        self.scores = nn.Linear(head_width, k)
        self.mix = nn.Linear(k, k)
        self.decoder = SkeletonDecoder(k, skeleton_max_points, skeleton_min_points, skeleton_spacing, offset_init)
        self.activation_mlp = SharedMLP(self.backbone.global_channels, activation_widths)
        self.activation_out = nn.Linear(self.activation_mlp.out_channels, self.decoder.num_pairs)

    @property
    def paired(self) -> bool:
        """Shape i of a training batch is paired with shape i + B/2 when the loss needs pairs."""
        return bool(self.loss.paired)

    @classmethod
    def upgrade_config(cls, section: dict[str, Any]) -> dict[str, Any]:
        return move_legacy_keys(section, "pointnet2-msg", cls.default_loss, cls.loss_keys)

    def _check_points(self, points: torch.Tensor) -> None:
        if points.dim() != 3 or points.shape[-1] != 3:
            raise KptoolError(f"{self.model_name}: point clouds must be (B, N, 3), got {tuple(points.shape)}")
        if points.shape[1] < self.backbone.min_points:
            raise KptoolError(f"{self.model_name}: clouds need at least {self.backbone.min_points} points, "
                              f"got {points.shape[1]} (prepare them with more points)")

    def forward(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        """Keypoints and what the decoder needs.

        Args:
            points: ``(B, N, 3)`` clouds in the prepared frame.

        Returns:
            ``keypoints (B, k, 3)``, ``heatmaps (B, k, N)`` (rows sum to 1),
            ``activations (B, k(k-1)/2)`` skeleton strengths in [0, 1].
        """
        self._check_points(points)
        per_point, global_ = self.backbone(points, points.repeat(1, 1, 3))
        # log-softmax over the k channels ends the reference segmentation network
        scores = F.log_softmax(self.scores(self.dropout(self.head(per_point))), dim=-1)       # (B, N, k)
        heatmaps = torch.softmax(self.mix(scores).transpose(1, 2), dim=-1)                    # (B, k, N)
        keypoints = heatmaps @ points
        activations = torch.sigmoid(self.activation_out(self.activation_mlp(global_)))
        return {"keypoints": keypoints, "heatmaps": heatmaps, "activations": activations}

    def reconstruction_loss(self, points: torch.Tensor, keypoints: torch.Tensor,
                            activations: torch.Tensor, counts: list[int] | None = None) -> torch.Tensor:
        """``(B,)`` composite Chamfer distance between each cloud and the skeletons of ``keypoints``
        (with ``counts`` points per skeleton when given, see :class:`SkeletonDecoder`)."""
        skeleton, counts = self.decoder(keypoints, counts)
        return composite_chamfer_distance(points, skeleton, counts, activations)

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """The ``loss:`` section's objective on ``batch["points"]`` ``(B, N, 3)``; components for logging."""
        return self.loss(self, batch["points"])

    def infer(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``batch["points"]`` ``(B, N, 3)`` -> ``{"keypoints": (B, k, 3)}`` (and the heat maps, activations)."""
        return self(batch["points"])
