"""Keypoint models: registry, PointNet++ backbone, Skeleton Merger, mutual reconstruction."""

from __future__ import annotations

import math

import pytest
import torch

from kptool.errors import KptoolError
from kptool.models import MODELS, SkeletonMerger, SkeletonMutual, build_model
from kptool.models.backbones.pointnet2 import REFERENCE_FP, REFERENCE_SA, PointNet2MSG
from kptool.models.skeleton_merger import SkeletonDecoder
from kptool.train.config import resolve_config

from conftest import requires_cuda

# A tiny network with the reference structure (2 MSG levels) for fast tests.
SMALL = dict(
    backbone={"name": "pointnet2-msg",
              "set_abstraction": [(32, (0.3, 0.6), (8, 16), ((8, 16), (8, 16))),
                                  (8, (0.6, 1.2), (8, 16), ((16, 32), (16, 32)))],
              "feature_propagation": [(32,), (32,)]},
    activation_widths=(32, 16), head_width=16, dropout=0.0,
    skeleton_max_points=40,
)


def _clouds(batch: int, n: int = 128, seed: int = 0) -> torch.Tensor:
    """Structured clouds in [-1, 1]: a box-ish slab and a rod of random proportions per shape."""
    g = torch.Generator().manual_seed(seed)
    clouds = []
    for _ in range(batch):
        size = 0.4 + 0.5 * torch.rand(3, generator=g)
        slab = (torch.rand(n // 2, 3, generator=g) * 2 - 1) * torch.tensor([size[0], 0.05, size[2]])
        rod = torch.zeros(n - n // 2, 3)
        rod[:, 1] = -torch.rand(n - n // 2, generator=g) * size[1] * 2
        clouds.append(torch.cat([slab, rod]))
    return torch.stack(clouds)


def _model(cls=SkeletonMerger, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return cls(num_keypoints=4, **{**SMALL, **kw})


def test_registry_and_presets():
    assert MODELS["skeleton-merger"] is SkeletonMerger and MODELS["skeleton-mutual"] is SkeletonMutual
    for name, cls in (("skeleton-merger", SkeletonMerger), ("skeleton-mutual", SkeletonMutual)):
        config = resolve_config(name)
        model = build_model(config["model"])
        assert type(model) is cls and model.num_keypoints == 10 and model.paired == (cls is SkeletonMutual)
        # the preset builds the reference architecture
        assert [(sa.num_centers, sa.radii, sa.max_samples) for sa in model.backbone.sa] == \
               [(c, r, k) for c, r, k, _ in REFERENCE_SA]
        assert model.backbone.global_channels == 1024 and model.backbone.out_channels == 128
        assert model.decoder.offsets.shape == (45, 200, 3)
        assert [fp.interpolation_power for fp in model.backbone.fp] == [2] * 4  # PointNet++'s 1/d^2
    assert build_model(resolve_config("skeleton-mutual")["model"]).loss.mutual_weight == 0.5
    with pytest.raises(KptoolError, match="unknown model 'nope'"):
        build_model({"name": "nope"})
    with pytest.raises(KptoolError, match="skeleton-merger"):
        build_model({"name": "skeleton-merger", "num_keypoints": 10, "widht": 3})
    with pytest.raises(KptoolError, match="num_keypoints >= 2"):
        build_model({"name": "skeleton-merger", "num_keypoints": 1})


def test_reference_widths():
    net = PointNet2MSG()
    assert [sa.out_channels for sa in net.sa] == [96, 256, 512, 1024]
    assert [fp.mlp.linears[0].in_features for fp in net.fp] == [1536, 512, 352, 128]
    assert [fp.out_channels for fp in net.fp] == [w[-1] for w in REFERENCE_FP]


def test_fast_backbone_equals_reference_path():
    torch.manual_seed(0)
    net = PointNet2MSG(9, SMALL["backbone"]["set_abstraction"], SMALL["backbone"]["feature_propagation"]).double()
    xyz = _clouds(2).double()
    feats = xyz.repeat(1, 1, 3)
    levels = [(xyz, feats)]
    for sa in net.sa:
        fast = sa(*levels[-1])
        ref = sa.forward_reference(*levels[-1])
        torch.testing.assert_close(fast, ref)
        levels.append(fast)
    (fine_xyz, fine), (coarse_xyz, coarse) = levels[1], levels[2]
    fp = net.fp[0]
    torch.testing.assert_close(fp(fine_xyz, coarse_xyz, fine, coarse),
                               fp.forward_reference(fine_xyz, coarse_xyz, fine, coarse))


def test_forward_shapes_and_convex_keypoints():
    model = _model()
    points = _clouds(3)
    out = model(points)
    assert out["keypoints"].shape == (3, 4, 3)
    assert out["heatmaps"].shape == (3, 4, 128)
    assert out["activations"].shape == (3, 6)
    torch.testing.assert_close(out["heatmaps"].sum(-1), torch.ones(3, 4))
    assert (out["heatmaps"] >= 0).all() and ((out["activations"] >= 0) & (out["activations"] <= 1)).all()
    torch.testing.assert_close(out["keypoints"], out["heatmaps"] @ points)
    lo, hi = points.amin(1, keepdim=True), points.amax(1, keepdim=True)
    assert ((out["keypoints"] >= lo - 1e-6) & (out["keypoints"] <= hi + 1e-6)).all()


def test_decoder_counts_and_segments():
    dec = SkeletonDecoder(3, max_points=200, min_points=15, spacing=0.01)
    with torch.no_grad():
        dec.offsets.zero_()
    kp = torch.tensor([[[0.0, 0, 0], [0.5, 0, 0], [0.0, 3.0, 0]]])
    # pairs (1,0), (2,0), (2,1): lengths 0.5, 3, ~3.04; count = clamp(int(sqrt(1e-3 + l^2) / 0.01), 15, 200)
    assert dec.point_counts(kp) == [int(math.sqrt(1e-3 + 0.25) / 0.01), 200, 200]
    assert dec.point_counts(torch.zeros(1, 3, 3)) == [15, 15, 15]
    points, counts = dec(kp)
    assert points.shape == (1, sum(counts), 3)
    first = points[0, :counts[0]]
    # from keypoint 0 (f = 0) to keypoint 1 (f = 1), evenly spaced
    torch.testing.assert_close(first, torch.linspace(0, 0.5, counts[0])[:, None] * torch.tensor([1.0, 0, 0]))


def test_training_reduces_loss():
    model = _model()
    points = _clouds(4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    start, _ = model.training_loss({"points": points})
    for _ in range(12):
        opt.zero_grad()
        loss, parts = model.training_loss({"points": points})
        loss.backward()
        opt.step()
    assert set(parts) == {"loss", "ccd_self", "offset_l2"}
    assert model.training_loss({"points": points})[0].item() < 0.75 * start.item()


def test_mutual_training_reduces_loss_and_logs_components():
    model = _model(SkeletonMutual)
    points = _clouds(4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    start, parts = model.training_loss({"points": points})
    assert set(parts) == {"loss", "ccd_self", "ccd_mutual", "offset_l2", "keypoint_offset_l2"}
    for _ in range(12):
        opt.zero_grad()
        loss, _ = model.training_loss({"points": points})
        loss.backward()
        opt.step()
    assert model.training_loss({"points": points})[0].item() < 0.75 * start.item()


def test_mutual_pairing():
    model = _model(SkeletonMutual)
    kp = torch.rand(4, 4, 3)
    # with a zero offset MLP, shape i is reconstructed from exactly its partner's keypoints
    with torch.no_grad():
        last = model.keypoint_offset.layers[-1]
        last.weight.zero_()
        last.bias.zero_()
    reshaped, offset = model.mutual_keypoints(kp)
    assert offset.shape == (2, 4, 3)
    torch.testing.assert_close(reshaped, kp[[2, 3, 0, 1]])
    # swapping the partners changes the mutual term, not the self term
    points = _clouds(4)
    _, paired = model.training_loss({"points": points})
    _, swapped = model.training_loss({"points": points[[0, 1, 3, 2]]})
    assert swapped["ccd_self"] == pytest.approx(paired["ccd_self"], rel=1e-5)
    assert swapped["ccd_mutual"] != pytest.approx(paired["ccd_mutual"], rel=1e-3)
    with pytest.raises(KptoolError, match="must be even"):
        model.training_loss({"points": points[:3]})


def test_mutual_loss_is_the_sum_of_its_parts():
    """The batched self + mutual pass equals separate decoder/CCD calls with the self keypoints' counts."""
    model = _model(SkeletonMutual).eval()
    points = _clouds(4)
    loss, parts = model.training_loss({"points": points})
    out = model(points)
    reshaped, offset = model.mutual_keypoints(out["keypoints"])
    counts = model.decoder.point_counts(out["keypoints"])
    ccd_self = model.reconstruction_loss(points, out["keypoints"], out["activations"])
    ccd_mutual = model.reconstruction_loss(points, reshaped, out["activations"], counts)
    expected = (0.5 * (ccd_self[:2].mean() + ccd_self[2:].mean())
                + 0.5 * (ccd_mutual[:2].mean() + ccd_mutual[2:].mean())
                + model.loss.offset_penalty(model) + model.loss.keypoint_offset_weight * (offset ** 2).sum(-1).mean())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert parts["ccd_mutual"] == pytest.approx(ccd_mutual.mean().item(), rel=1e-5)


def test_detect_and_determinism():
    points = _clouds(2)
    a, b = _model(seed=1), _model(seed=1)
    a.train()
    kp = a.predict({"points": points})["keypoints"]
    assert kp.shape == (2, 4, 3) and not kp.requires_grad and a.training
    torch.testing.assert_close(kp, b.predict({"points": points})["keypoints"])
    torch.manual_seed(5)
    la = a.training_loss({"points": points})[0]
    torch.manual_seed(5)
    lb = b.training_loss({"points": points})[0]
    assert la.item() == lb.item()
    with pytest.raises(KptoolError, match="at least 32 points"):
        a.predict({"points": points[:, :20]})["keypoints"]


@requires_cuda
def test_cuda_matches_cpu():
    points = _clouds(4)
    cpu = _model(SkeletonMutual, seed=2)
    gpu = _model(SkeletonMutual, seed=2).cuda()
    torch.testing.assert_close(gpu.predict({"points": points.cuda()})["keypoints"].cpu(),
                               cpu.predict({"points": points})["keypoints"], rtol=1e-4, atol=1e-4)
    loss, _ = gpu.training_loss({"points": points.cuda()})
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in gpu.parameters() if p.grad is not None)


def test_checkpoint_detector_accepts_clouds_below_the_model_minimum():
    from kptool.detect.learned import CheckpointDetector

    model = _model()
    config = {"name": "skeleton-merger", "model": {"name": "skeleton-merger", "num_keypoints": 4},
              "data": {"points": 128}}
    det = CheckpointDetector(model, config, torch.device("cpu"))
    assert det.min_points == model.backbone.min_points == 32
    cloud = _clouds(1, 20)[0].numpy()                  # a decimated cloud: fewer points than the first level
    kp = det(cloud)
    assert kp.shape == (4, 3)
    # convex combinations of the cloud's own points
    assert (kp >= cloud.min(0) - 1e-6).all() and (kp <= cloud.max(0) + 1e-6).all()


def test_checkpoint_without_interpolation_key_keeps_inverse_distance(tmp_path):
    """Weights saved by kptool 0.1 (flat model section, no ``interpolation_power``) load the 1/d network."""
    from kptool.detect import load_detector

    def keypoints(model, points):
        return model.predict({"points": points})["keypoints"]

    backbone = SMALL["backbone"]
    old = _model(seed=3, backbone={**backbone, "interpolation_power": 1})
    flat = {"name": "skeleton-merger", "num_keypoints": 4, **{k: v for k, v in SMALL.items() if k != "backbone"},
            **{k: v for k, v in backbone.items() if k != "name"}}
    config = {"name": "skeleton-merger", "model": flat, "data": {"points": 128}}
    torch.save({"format": "kptool-weights", "version": 1, "config": config, "model": old.state_dict(),
                "frame": {}, "meta": {}}, tmp_path / "old.pt")
    det = load_detector(tmp_path / "old.pt", "cpu")
    assert [fp.interpolation_power for fp in det.model.backbone.fp] == [1, 1]
    old.eval()
    points = _clouds(2)
    torch.testing.assert_close(keypoints(det.model, points), keypoints(old, points))
    new = _model(seed=3, backbone={**backbone, "interpolation_power": 2})
    new.load_state_dict(old.state_dict())
    new.eval()
    assert not torch.allclose(keypoints(new, points), keypoints(old, points))
    with pytest.raises(KptoolError, match="interpolation_power must be 1 or 2"):
        _model(backbone={**backbone, "interpolation_power": 3})


def test_axis_scale_fit_follows_stretches_but_not_mirrors():
    from kptool.models.skeleton_mutual import axis_scale_fit
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 10, 3, generator=g)
    stretched = a * torch.tensor([1.5, 0.7, 2.0]) + torch.tensor([0.1, -0.2, 0.3])
    assert torch.allclose(axis_scale_fit(a, stretched), stretched, atol=1e-5)
    mirrored = a * torch.tensor([-1.0, 1.0, 1.0])
    residual = (axis_scale_fit(a, mirrored) - mirrored)[..., 0]
    assert residual.abs().mean() > 0.5 * mirrored[..., 0].abs().mean()


def test_mutual_with_axis_scale_alignment_trains():
    model = _model(SkeletonMutual, keypoint_alignment="axis-scale")
    points = _clouds(4)
    kp = model(points)["keypoints"]
    reshaped, offset = model.mutual_keypoints(kp)
    assert reshaped.shape == kp.shape and offset.shape == kp.shape
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    start, _ = model.training_loss({"points": points})
    for _ in range(12):
        opt.zero_grad()
        model.training_loss({"points": points})[0].backward()
        opt.step()
    assert model.training_loss({"points": points})[0].item() < 0.75 * start.item()
    with pytest.raises(KptoolError, match="keypoint_alignment"):
        _model(SkeletonMutual, keypoint_alignment="affine")


def test_kptool_01_flat_model_sections_build_the_same_model():
    """Checkpoints and shipped weights store 0.1's flat model section; it must build the same network and loss."""
    flat = {"name": "skeleton-mutual", "num_keypoints": 4, **{k: v for k, v in SMALL.items() if k != "backbone"},
            "set_abstraction": SMALL["backbone"]["set_abstraction"],
            "feature_propagation": SMALL["backbone"]["feature_propagation"],
            "offset_weight": 0.02, "self_weight": 0.7, "mutual_weight": 0.3, "keypoint_offset_weight": 2.0}
    nested = resolve_config({"model": flat})["model"]
    assert nested["backbone"] == {"name": "pointnet2-msg", "interpolation_power": 1,   # 0.1 weighted by 1/d
                                  **{k: SMALL["backbone"][k] for k in ("set_abstraction", "feature_propagation")}}
    assert nested["loss"] == {"name": "mutual-reconstruction", "offset_weight": 0.02, "self_weight": 0.7,
                              "mutual_weight": 0.3, "keypoint_offset_weight": 2.0}
    torch.manual_seed(3)
    old = build_model(flat)
    torch.manual_seed(3)
    new = build_model(nested)
    for (ka, va), (kb, vb) in zip(old.state_dict().items(), new.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    points = _clouds(4)
    torch.manual_seed(0)
    a = old.training_loss({"points": points})
    torch.manual_seed(0)
    b = new.training_loss({"points": points})
    assert a[0].item() == b[0].item() and a[1] == b[1]
    with pytest.raises(KptoolError, match="does not fit model 'skeleton-merger'"):
        build_model({"name": "skeleton-merger", "loss": {"name": "mutual-reconstruction"}})
