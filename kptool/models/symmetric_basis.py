"""Category-specific symmetric keypoints from a learned shape basis (Fernandez-Labrador et al., ECCV 2020).

Keypoints are a low-rank shape model, ``P = R(theta) [shape from basis and coefficients]``:

- ``nosym`` (eq. 2): ``P = R mat(B c)``, basis ``(3, N, K)``;
- ``instance`` (eq. 3): ``H = mat(B_half c)``, ``P = R [H, A H]``: every instance symmetric;
- ``deform`` (eq. 4): ``P = R [mat(B_half c), A mat(B_half c')]``: the reflected basis with its
  own coefficients, a symmetric deformation space (posed bodies);

with ``A = I - 2 n n^T`` the reflection in a learned plane through the origin that contains
the up axis (``n = (nx, 0, nz)``, normalised on every pass). The angle ``theta`` about the
up axis (y) and the coefficients come from a PointNet on the input (pose and coefficient
branch); the basis and the plane are parameters of the category. The keypoints are
trained against the unordered nodes of a USIP node branch (:mod:`kptool.models.node_branch`)
by Chamfer distance, with coverage and inclusivity losses on the nodes
(:mod:`kptool.losses.shape_basis`). Unlike the authors' released code, the angle receives a
gradient (``detach_angle=True`` restores their behaviour) and eq. 4 is trained.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kptool.errors import KptoolError
from kptool.losses.registry import LOSSES
from kptool.models.base import Model
from kptool.models.backbones.common import SharedMLP
from kptool.models.node_branch import NodeBranch
from kptool.models.registry import register_model

MODES = ("nosym", "instance", "deform")


def rotation_about_up(theta: torch.Tensor) -> torch.Tensor:
    """``(B,)`` angles (radians) -> ``(B, 3, 3)`` rotations about y (right-handed)."""
    c, s = torch.cos(theta), torch.sin(theta)
    zero, one = torch.zeros_like(theta), torch.ones_like(theta)
    return torch.stack([torch.stack([c, zero, s], -1), torch.stack([zero, one, zero], -1),
                        torch.stack([-s, zero, c], -1)], dim=-2)


def random_up_rotation(batch: int, max_degrees: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(batch, 3, 3)`` rotations about y by angles uniform in ``[-max_degrees, max_degrees]`` (CPU)."""
    angles = (torch.rand(batch, generator=generator) * 2 - 1) * torch.deg2rad(torch.tensor(float(max_degrees)))
    return rotation_about_up(angles)


class PoseCoefficients(nn.Module):
    """Pose and coefficient branch: ``(B, N, 3)`` -> angle ``(B,)``, coefficients ``(B, C)``.

    Per point 3 -> 64 -> 128 (BatchNorm, ReLU) -> linear -> C + 1, max over points.
    """

    def __init__(self, num_coefficients: int):
        super().__init__()
        self.mlp = SharedMLP(3, (64, 128))
        self.out = nn.Linear(128, num_coefficients + 1)

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.out(self.mlp(points)).max(dim=1).values
        return out[:, 0], out[:, 1:]


class ShapeBasis(nn.Module):
    """The category's learned basis and symmetry plane, and the three keypoint models.

    Args:
        num_keypoints: N (even for ``instance`` and ``deform``).
        num_basis: K basis shapes.
        mode: ``nosym`` (eq. 2), ``instance`` (eq. 3) or ``deform`` (eq. 4).
    """

    def __init__(self, num_keypoints: int, num_basis: int, mode: str):
        super().__init__()
        if mode not in MODES:
            raise KptoolError(f"unknown symmetry mode {mode!r}: expected one of {', '.join(MODES)}")
        if mode != "nosym" and num_keypoints % 2:
            raise KptoolError(f"symmetry mode {mode!r} needs an even number of keypoints, got {num_keypoints}")
        self.mode, self.num_keypoints, self.num_basis = mode, int(num_keypoints), int(num_basis)
        columns = num_keypoints if mode == "nosym" else num_keypoints // 2
        self.basis = nn.Parameter(torch.empty(3, columns, num_basis).uniform_(-0.5, 0.5))
        # (nx, nz): the plane contains the up axis y; eq. 2 has no plane
        self.plane = nn.Parameter(torch.rand(2)) if mode != "nosym" else None

    @property
    def num_coefficients(self) -> int:
        return 2 * self.num_basis if self.mode == "deform" else self.num_basis

    def normal(self) -> torch.Tensor:
        """``(3,)`` unit normal of the symmetry plane in the canonical frame (not for ``nosym``)."""
        if self.plane is None:
            raise KptoolError("symmetry mode 'nosym' has no symmetry plane")
        n = torch.stack([self.plane[0], torch.zeros_like(self.plane[0]), self.plane[1]])
        return n / n.norm().clamp(min=1e-12)

    def reflection(self) -> torch.Tensor:
        """``(3, 3)`` reflection ``I - 2 n n^T`` in the symmetry plane."""
        n = self.normal()
        return torch.eye(3, dtype=n.dtype, device=n.device) - 2 * torch.outer(n, n)

    def canonical(self, coefficients: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` coefficients -> ``(B, N, 3)`` keypoints before rotation."""
        k = self.num_basis
        first = torch.einsum("dnk,bk->bnd", self.basis, coefficients[:, :k])
        if self.mode == "nosym":
            return first
        refl = self.reflection()
        second = first if self.mode == "instance" else torch.einsum("dnk,bk->bnd", self.basis, coefficients[:, k:])
        return torch.cat([first, second @ refl.T], dim=1)

    def forward(self, coefficients: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
        """Keypoints ``(B, N, 3)``: the canonical shape rotated by ``rotation`` ``(B, 3, 3)``."""
        return self.canonical(coefficients) @ rotation.transpose(1, 2)


@register_model("symmetric-basis")
class SymmetricBasisKeypoints(Model):
    """Symmetric shape-basis keypoints (paper 001): ordered keypoints, learned basis and symmetry plane (eq. 2/3/4).

    Args:
        num_keypoints: N, also the number of nodes.
        num_basis: K.
        mode: ``instance`` (eq. 3, the paper's main model), ``deform`` (eq. 4) or ``nosym`` (eq. 2).
        misalignment_deg: training inputs are turned about the up axis by up to this angle.
        detach_angle: the authors' released behaviour (the angle gets no gradient).
        loss: the ``loss:`` section (``shape-basis``: weights chamfer, coverage, inclusivity = 1, 1, 2).
    """

    inputs = ("points",)
    outputs = ("keypoints",)
    details = ("nodes", "symmetry_normal", "angle")

    def __init__(self, num_keypoints: int = 14, num_basis: int = 10, mode: str = "instance",
                 misalignment_deg: float = 45.0, detach_angle: bool = False, loss: dict | None = None):
        super().__init__()
        self.num_keypoints = int(num_keypoints)
        self.misalignment_deg = float(misalignment_deg)
        self.detach_angle = bool(detach_angle)
        self.objective = LOSSES.build({"name": "shape-basis", **(loss or {})})
        self.basis = ShapeBasis(num_keypoints, num_basis, mode)
        self.pose = PoseCoefficients(self.basis.num_coefficients)
        self.nodes = NodeBranch(num_keypoints)
        if mode == "nosym":
            self.details = ("nodes", "angle")     # eq. 2 predicts no plane

    def forward(self, points: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``(B, N, 3)`` cloud -> keypoints ``(B, K, 3)``, nodes ``(B, K, 3)``, angle ``(B,)``,
        coefficients ``(B, C)`` and (not for ``nosym``) the symmetry-plane normal in the input frame ``(B, 3)``."""
        angle, coefficients = self.pose(points)
        rotation = rotation_about_up(angle.detach() if self.detach_angle else angle)
        out = {"keypoints": self.basis(coefficients, rotation), "nodes": self.nodes(points, generator).nodes,
               "angle": angle, "coefficients": coefficients}
        if self.basis.plane is not None:
            out["symmetry_normal"] = rotation @ self.basis.normal()
        return out

    def misalign(self, points: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The augmentation: each cloud turned about y by a uniform angle within ``misalignment_deg``."""
        if self.misalignment_deg <= 0:
            return points
        rot = random_up_rotation(points.shape[0], self.misalignment_deg, generator).to(points)
        return points @ rot.transpose(1, 2)

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        points = self.misalign(batch["points"])
        out = self(points)
        return self.objective(out["keypoints"], out["nodes"], points)

    def infer(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self(batch["points"])

    def shape_details(self, predicted: dict[str, Any], points: Any) -> dict[str, Any]:
        """The details plus ``merged``: the keypoints after the authors' NMS (N' rows)."""
        from kptool.metrics.properties import frame_scale, nms_merge

        merged, _ = nms_merge(predicted["keypoints"], scale=frame_scale(points))
        return {**{k: predicted[k] for k in self.details}, "merged": merged}
