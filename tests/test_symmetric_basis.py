"""Shape-basis keypoints (paper 001): the three symmetry modes, node branch, losses, USIP baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kptool.errors import KptoolError
from kptool.losses.shape_basis import box_extents, probabilistic_chamfer, shape_basis_loss
from kptool.models.node_branch import NodeBranch, group_means, scatter_max, seed_nodes
from kptool.models.symmetric_basis import (
    ShapeBasis,
    SymmetricBasisKeypoints,
    random_up_rotation,
    rotation_about_up,
)
from kptool.models.usip import USIPKeypoints, sigma_nms
from kptool.registration import rotation_about_up as rotation_about_up_np


def _reflect(points: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
    """Reflection of ``(B, N, 3)`` points in the planes through the origin with normals ``(B, 3)``."""
    return points - 2 * (points * normal[:, None]).sum(-1, keepdim=True) * normal[:, None]


def test_rotation_about_up_matches_the_numpy_one():
    angles = torch.tensor([0.3, -1.2, 2.5], dtype=torch.float64)
    for a, r in zip(angles, rotation_about_up(angles)):
        np.testing.assert_allclose(r.numpy(), rotation_about_up_np(np.degrees(float(a))), atol=1e-12)


def test_instance_mode_keypoints_are_symmetric_about_the_rotated_plane():
    torch.manual_seed(0)
    basis = ShapeBasis(8, 5, "instance").double()
    n = basis.normal()
    assert n[1] == 0 and torch.isclose(n.norm(), torch.tensor(1.0, dtype=n.dtype))
    coeff, rot = torch.randn(3, 5, dtype=torch.float64), rotation_about_up(torch.randn(3, dtype=torch.float64))
    kp = basis(coeff, rot)
    normal = rot @ n                                                  # the plane in the input frame
    mirrored = _reflect(kp, normal)
    torch.testing.assert_close(mirrored[:, :4], kp[:, 4:])           # slot i <-> slot i + N/2
    torch.testing.assert_close(kp[:, :4], (basis.basis.unsqueeze(0) * coeff[:, None, None]).sum(-1)
                               .transpose(1, 2) @ rot.transpose(1, 2))


def test_deform_mode_reflects_the_basis_with_its_own_coefficients():
    torch.manual_seed(1)
    basis = ShapeBasis(6, 4, "deform").double()
    assert basis.num_coefficients == 8
    c, c2 = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    rot = rotation_about_up(torch.zeros(2, dtype=torch.float64))
    kp = basis(torch.cat([c, c2], 1), rot)
    first = torch.einsum("dnk,bk->bnd", basis.basis, c2)
    torch.testing.assert_close(kp[:, 3:], first @ basis.reflection().T)
    # Equal coefficients on both halves give the instance-symmetric model (eq. 3).
    same = ShapeBasis(6, 4, "instance").double()
    same.load_state_dict(basis.state_dict())
    torch.testing.assert_close(basis(torch.cat([c, c], 1), rot), same(c, rot))
    assert not torch.allclose(_reflect(kp, basis.normal().expand(2, 3))[:, :3], kp[:, 3:])


def test_nosym_mode_is_a_plain_low_rank_basis():
    basis = ShapeBasis(7, 3, "nosym")
    assert basis.basis.shape == (3, 7, 3) and basis.num_coefficients == 3 and basis.plane is None
    with pytest.raises(KptoolError, match="no symmetry plane"):
        basis.normal()
    model = SymmetricBasisKeypoints(6, 3, "nosym").eval()
    assert "symmetry_normal" not in model.predict({"points": torch.rand(2, 64, 3)}) and model.details == ("nodes", "angle")
    c = torch.tensor([[1.0, 0.0, 0.0]])
    torch.testing.assert_close(basis(c, torch.eye(3)[None]), basis.basis[:, :, 0].T[None])
    with pytest.raises(KptoolError, match="even"):
        ShapeBasis(7, 3, "instance")
    with pytest.raises(KptoolError, match="unknown symmetry mode"):
        ShapeBasis(8, 3, "mirror")


def test_the_angle_gets_a_gradient_unless_detached():
    torch.manual_seed(2)
    x = torch.rand(2, 256, 3) * 2 - 1
    for detach in (False, True):
        torch.manual_seed(3)
        model = SymmetricBasisKeypoints(6, 3, "instance", misalignment_deg=0, detach_angle=detach)
        out = model(x)
        out["keypoints"].square().sum().backward()
        angle_row = model.pose.out.weight.grad[0]        # row 0 of the last layer: the angle
        assert (angle_row.abs().sum() == 0) == detach
        assert model.basis.plane.grad is not None and model.basis.plane.grad.abs().sum() > 0


def test_misalignment_turns_about_the_up_axis_within_its_range():
    gen = torch.Generator().manual_seed(0)
    rot = random_up_rotation(500, 45.0, gen)
    angles = torch.rad2deg(torch.atan2(rot[:, 0, 2], rot[:, 0, 0]))
    assert angles.abs().max() <= 45.0 and angles.abs().max() > 40.0 and angles.min() < -40.0
    model = SymmetricBasisKeypoints(6, 3, misalignment_deg=30.0)
    x = torch.randn(4, 50, 3)
    y = model.misalign(x)
    torch.testing.assert_close(y[..., 1], x[..., 1])
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))


def test_node_branch_helpers_match_plain_loops():
    torch.manual_seed(4)
    values, index = torch.randn(2, 30, 5), torch.randint(0, 6, (2, 30))
    index[:, :5] = torch.arange(5)            # group 5 may be empty: it must read 0
    points = torch.randn(2, 30, 3)
    got_max, got_mean = scatter_max(values, index, 6), group_means(points, index, 6)
    for b in range(2):
        for g in range(6):
            member = index[b] == g
            if member.any():
                torch.testing.assert_close(got_max[b, g], values[b, member].max(0).values)
                torch.testing.assert_close(got_mean[b, g], points[b, member].mean(0))
            else:
                assert (got_max[b, g] == 0).all() and (got_mean[b, g] == 0).all()


def test_node_branch_seeds_are_cloud_points_and_nodes_start_at_cluster_means():
    torch.manual_seed(5)
    x = torch.rand(2, 400, 3)
    seeds = seed_nodes(x, 10, torch.Generator().manual_seed(0))
    for b in range(2):
        assert ((seeds[b, :, None] - x[b, None]) ** 2).sum(-1).min(1).values.max() == 0
        assert len(torch.unique(seeds[b], dim=0)) == 10
    out = NodeBranch(10).eval()(x)
    assert out.nodes.shape == (2, 10, 3) and out.extra is None
    assert (out.nodes - out.centres).abs().max() < 1e-2              # last layer starts near 0


def test_shape_basis_loss_parts_on_a_hand_worked_case():
    cloud = torch.tensor([[[0.0, 0, 0], [2, 0, 0], [0, 1, 0], [0, 0, 4]]])
    nodes = torch.tensor([[[0.0, 0, 0], [1, 0, 0]]])
    keypoints = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [1, 3, 0]]])
    total, parts = shape_basis_loss(keypoints, nodes, cloud)
    # Chamfer: keypoints->nodes (0 + 0 + 3) / 3 = 1, nodes->keypoints 0: mean of the two = 0.5.
    assert parts["loss_chamfer"] == pytest.approx(0.5)
    # Extents: nodes (1, 0, 0), cloud (2, 1, 4): SmoothL1 per axis 0.5, 0.5, 3.5 -> mean 1.5.
    torch.testing.assert_close(box_extents(cloud), torch.tensor([[2.0, 1, 4]]))
    assert parts["loss_coverage"] == pytest.approx(1.5)
    assert parts["loss_inclusivity"] == pytest.approx(0.5)                # node (1,0,0): 1 from the cloud
    assert float(total) == pytest.approx(0.5 + 1.5 + 2 * 0.5)
    # The paper's squared distances (eqs. 5, 7): keypoints->nodes (0 + 0 + 9) / 3 = 3 -> 1.5; node (1,0,0)
    # 1 from the cloud either way; a node 2 from the cloud counts 4 against 2.
    _, parts = shape_basis_loss(keypoints, nodes, cloud, squared=True)
    assert parts["loss_chamfer"] == pytest.approx(1.5) and parts["loss_inclusivity"] == pytest.approx(0.5)
    far = torch.tensor([[[0.0, 0, 0], [0, 0, 2]]])                       # 2 from its nearest cloud point
    assert shape_basis_loss(far, far, cloud, squared=True)[1]["loss_inclusivity"] == pytest.approx(2.0)
    assert shape_basis_loss(far, far, cloud)[1]["loss_inclusivity"] == pytest.approx(1.0)


def test_probabilistic_chamfer_and_sigma_nms():
    a, b = torch.zeros(1, 1, 3), torch.tensor([[[1.0, 0, 0]]])
    one = torch.ones(1, 1)
    assert float(probabilistic_chamfer(a, one, b, one)) == pytest.approx(2.0)     # (log 1 + 1/1) x 2
    assert float(probabilistic_chamfer(a, 2 * one, b, 2 * one)) == pytest.approx(2 * (np.log(2) + 0.5))
    kps = np.array([[0.0, 0, 0], [0.1, 0, 0], [1.0, 0, 0], [0.15, 0, 0]])
    assert sigma_nms(kps, [0.5, 0.1, 0.3, 0.9], radius=0.2).tolist() == [1, 2]
    assert sigma_nms(kps, [0.5, 0.1, 0.3, 0.9], radius=0.01).tolist() == [1, 2, 0, 3]


@pytest.mark.parametrize("mode", ["instance", "deform", "nosym"])
def test_short_training_lowers_the_loss(mode):
    from kptool.data.synthetic import generate_shape

    rng = np.random.default_rng(0)
    clouds = []
    for seed in range(8):
        v = generate_shape("chair", seed).vertices
        v = v[rng.choice(len(v), 256, replace=False)]
        v = v - v.mean(0)
        clouds.append(v * 2 / (v.max(0) - v.min(0)).max())
    x = torch.tensor(np.stack(clouds), dtype=torch.float32)
    torch.manual_seed(0)
    model = SymmetricBasisKeypoints(8, 4, mode, misalignment_deg=0.0)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            torch.manual_seed(1)
            out = model(x)
            loss = shape_basis_loss(out["keypoints"], out["nodes"], x)[0]
        model.train()
        return float(loss)

    before = evaluate()
    for _ in range(50):
        opt.zero_grad()
        loss, _ = model.training_loss({"points": x})
        loss.backward()
        opt.step()
    assert evaluate() < 0.8 * before


def test_usip_pair_loss_trains_and_outputs_sigma():
    torch.manual_seed(0)
    model = USIPKeypoints(6, misalignment_deg=0.0)
    x = torch.rand(2, 200, 3)
    loss, parts = model.training_loss({"points": x})
    loss.backward()
    assert set(parts) == {"probabilistic_chamfer", "point_to_point"} and torch.isfinite(loss)
    out = model.eval().infer({"points": x})
    assert out["keypoints"].shape == (2, 6, 3) and (out["sigma"] > 0).all()
