"""Shared backbones: one interface, fast paths equal to their literal reference forms, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kptool.errors import KptoolError
from kptool.models.backbones import BACKBONES, DGCNN, PointNet, PointNet2MSG, PointNet2SSG
from kptool.models.backbones.dgcnn import EdgeConv
from kptool.ops import reference as ops_reference

from conftest import requires_cuda

# Small versions of each backbone (the defaults are the papers' networks, checked by width below).
SMALL = {
    "pointnet": dict(local_widths=(8, 8), global_widths=(8, 16), head_widths=(16, 8)),
    "pointnet2-ssg": dict(set_abstraction=[(32, 0.3, 8, (8, 16)), (8, 0.6, 8, (16, 32))],
                          feature_propagation=[(32,), (16,)]),
    "pointnet2-msg": dict(in_channels=0, set_abstraction=[(32, (0.3, 0.6), (8, 16), ((8, 16), (8, 16))),
                                                          (8, (0.6, 1.2), (8, 16), ((16, 32), (16, 32)))],
                          feature_propagation=[(32,), (16,)]),
    "dgcnn": dict(k=8, edge_widths=((8, 8), (8,)), embedding=32, head_widths=(16,)),
}


def clouds(batch: int, n: int = 96, seed: int = 0, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab-and-rod clouds of two families (rod below or beside the slab): points, per-point
    labels (1 = rod) and per-shape labels (the family)."""
    g = torch.Generator().manual_seed(seed)
    points, point_labels, families = [], [], []
    for i in range(batch):
        family = i % 2
        slab = (torch.rand(n // 2, 3, generator=g) * 2 - 1) * torch.tensor([0.8, 0.05, 0.8])
        rod = torch.zeros(n - n // 2, 3)
        rod[:, 1 - family] = -torch.rand(n - n // 2, generator=g) * 0.9 - 0.1
        cloud = torch.cat([slab, rod]) + 0.01 * torch.randn(n, 3, generator=g)
        order = torch.randperm(n, generator=g)
        points.append(cloud[order])
        point_labels.append(torch.cat([torch.zeros(n // 2), torch.ones(n - n // 2)])[order].long())
        families.append(family)
    return torch.stack(points).to(dtype), torch.stack(point_labels), torch.tensor(families)


def build(name: str, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return BACKBONES.build({"name": name, **SMALL[name], **kw})


def test_registry_lists_every_backbone_with_the_papers_widths():
    assert set(BACKBONES) == {"pointnet", "pointnet2-ssg", "pointnet2-msg", "dgcnn"}
    assert all(BACKBONES.describe(name) for name in BACKBONES)
    pn = PointNet()
    assert [l.out_features for l in pn.local.linears] == [64, 64]
    assert [l.out_features for l in pn.global_mlp.linears] == [64, 128, 1024]
    assert pn.head.mlp.linears[0].in_features == 64 + 1024 and pn.out_channels == 128
    assert pn.transform is not None and PointNet(input_transform=False).transform is None
    dg = DGCNN()
    assert [e.k for e in dg.edges] == [20, 20, 20]
    assert [[l.out_features for l in e.mlp.linears] for e in dg.edges] == [[64, 64], [64, 64], [64]]
    assert [e.in_channels for e in dg.edges] == [3, 64, 64]
    assert dg.embed.linears[0].in_features == 192 and dg.global_channels == 1024 and dg.out_channels == 128
    ssg = PointNet2SSG()
    assert [(sa.num_centers, sa.radii, sa.max_samples, sa.out_channels) for sa in ssg.sa] == [
        (1024, (0.1,), (32,), 64), (256, (0.2,), (32,), 128), (64, (0.4,), (32,), 256), (16, (0.8,), (32,), 512)]
    assert ssg.global_channels == 512 and ssg.out_channels == 128
    assert PointNet2MSG().global_channels == 1024
    with pytest.raises(KptoolError, match="unknown backbone 'pointnet3'"):
        BACKBONES.build({"name": "pointnet3"})


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("with_features", [False, True])
def test_forward_matches_reference_forward(name, with_features):
    """The fast path (fused pools, split first layers) computes the literal network: values and
    parameter gradients, in training mode (batch statistics) and in eval mode."""
    net = build(name, in_channels=2 if with_features else 0).double()
    xyz = clouds(3, dtype=torch.float64)[0]
    features = torch.rand(3, xyz.shape[1], 2, dtype=torch.float64) if with_features else None
    for training in (True, False):
        net.train(training)
        grads = []
        outputs = []
        for forward in (net.forward, net.forward_reference):
            net.zero_grad()
            per_point, global_ = forward(xyz, features)
            assert per_point.shape == (3, xyz.shape[1], net.out_channels)
            assert global_.shape == (3, net.global_channels)
            (per_point.sin().sum() + global_.cos().sum()).backward()
            outputs.append((per_point.detach(), global_.detach()))
            grads.append([p.grad.clone() for p in net.parameters() if p.grad is not None])
        torch.testing.assert_close(outputs[0], outputs[1])
        assert len(grads[0]) == len(grads[1]) > 0
        for fast, ref in zip(*grads):
            torch.testing.assert_close(fast, ref)


def test_pointnet2_global_is_the_max_pooled_last_level():
    net = build("pointnet2-msg").double().eval()
    xyz = clouds(2, dtype=torch.float64)[0]
    levels = [(xyz, None)]
    for sa in net.sa:
        levels.append(sa(*levels[-1]))
    torch.testing.assert_close(net(xyz)[1], levels[-1][1].amax(dim=1))


def test_edgeconv_hand_worked():
    """Two features per point, k = 2, one linear layer whose BatchNorm is the identity in eval mode."""
    conv = EdgeConv(2, (2,), k=2).double().eval()
    with torch.no_grad():
        conv.mlp.linears[0].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, 1]]))   # [x_i0, (x_j - x_i)0 + (x_j - x_i)1]
    x = torch.tensor([[[0.0, 0], [1, 0], [5, 5], [5, 6]]], dtype=torch.float64)
    # neighbours (self first): 0 -> {0, 1}, 1 -> {1, 0}, 2 -> {2, 3}, 3 -> {3, 2}
    assert torch.equal(conv.neighbours(x), torch.tensor([[[0, 1], [1, 0], [2, 3], [3, 2]]]))
    bn_scale = 1 / (1 + conv.mlp.norms[0].eps) ** 0.5
    expected = torch.tensor([[[0.0, 1], [1, 0], [5, 1], [5, 0]]], dtype=torch.float64)
    # relu(max(x_i0, x_i0)) and relu(max over j of the summed offsets, 0 for j = i)
    torch.testing.assert_close(conv(x), expected * bn_scale)


def test_dgcnn_graphs_are_rebuilt_in_feature_space():
    net = build("dgcnn").double().eval()
    xyz = clouds(2, dtype=torch.float64)[0]
    with torch.no_grad():
        first = net.edges[0](xyz)
    idx = net.edges[1].neighbours(first)
    n = torch.full((2,), xyz.shape[1])
    _, expected = ops_reference.knn(first, first, 8, n, n)
    assert torch.equal(idx, expected)
    assert not torch.equal(idx, net.edges[0].neighbours(xyz))  # not the spatial graph


def test_pointnet_input_transform_starts_as_the_identity_and_learns():
    net = build("pointnet")
    xyz = clouds(4)[0]
    torch.testing.assert_close(net.transform(xyz), torch.eye(3).expand(4, 3, 3))
    net_plain = build("pointnet", input_transform=False)
    net_plain.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("transform.")})
    torch.testing.assert_close(net(xyz), net_plain(xyz))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_backbone_rejects_inputs_that_break_the_contract(name):
    net = build(name)
    xyz = clouds(2)[0]
    with pytest.raises(ValueError, match=r"xyz must be \(B, N, 3\)"):
        net(xyz[..., :2])
    with pytest.raises(ValueError, match="takes no input features"):
        net(xyz, xyz)
    with pytest.raises(ValueError, match=r"features must be \(B, N, 3\)"):
        build(name, in_channels=3)(xyz, None)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_backbone_trains(name):
    """Per-point part labels from the per-point features and the shape family from the global
    feature, through linear heads: 25 Adam steps cut the loss at least in half."""
    net = build(name, seed=1)
    point_head = torch.nn.Linear(net.out_channels, 2)
    shape_head = torch.nn.Linear(net.global_channels, 2)
    params = [*net.parameters(), *point_head.parameters(), *shape_head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)
    xyz, point_labels, families = clouds(8, seed=2)

    def loss_fn():
        per_point, global_ = net(xyz)
        return (F.cross_entropy(point_head(per_point).reshape(-1, 2), point_labels.reshape(-1))
                + F.cross_entropy(shape_head(global_), families))

    torch.manual_seed(0)
    start = loss_fn().item()
    for _ in range(25):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert loss_fn().item() < 0.5 * start


@requires_cuda
@pytest.mark.parametrize("name", sorted(SMALL))
def test_backbone_on_cuda_matches_cpu(name):
    net = build(name).eval()
    xyz = clouds(2)[0]
    per_point, global_ = net(xyz)
    gpu = net.cuda()
    per_point_gpu, global_gpu = gpu(xyz.cuda())
    torch.testing.assert_close(per_point_gpu.cpu(), per_point, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(global_gpu.cpu(), global_, rtol=1e-4, atol=1e-4)
    gpu.train()
    out = gpu(xyz.cuda())
    (out[0].sum() + out[1].sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in gpu.parameters() if p.grad is not None)
