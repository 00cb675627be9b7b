"""Soft silhouettes: limit as sigma -> 0, gradients, camera refinement, CUDA."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import trimesh

from conftest import requires_cuda
from kptool.render import Camera, rasterize
from kptool.render.refine import refine_camera, silhouette_iou
from kptool.render.soft import soft_silhouette


def _mesh():
    m = trimesh.creation.annulus(r_min=0.3, r_max=1.0, height=0.8, sections=16)
    m.apply_transform(trimesh.transformations.rotation_matrix(0.4, [1, 0, 0]))
    return np.asarray(m.vertices), np.asarray(m.faces)


def _soft(v, f, cam, sigma, dtype=torch.float64, device="cpu", requires_grad=False):
    params = [torch.tensor(x, dtype=dtype, device=device, requires_grad=requires_grad)
              for x in (cam.azimuth, cam.elevation, cam.distance)]
    sil = soft_silhouette(torch.tensor(v, dtype=dtype, device=device), torch.tensor(f, device=device), *params,
                          torch.tensor(cam.target, dtype=dtype, device=device), cam.fov, cam.size, sigma)
    return sil, params


def test_soft_silhouette_tends_to_the_hard_one():
    v, f = _mesh()
    cam = Camera(0.8, 1.1, 2.6, size=64)
    hard = rasterize(v, f, cam).mask
    ious = [silhouette_iou(_soft(v, f, cam, s)[0].numpy() > 0.5, hard) for s in (1.0, 0.1, 0.01, 1e-4)]
    assert all(a <= b + 1e-9 for a, b in zip(ious, ious[1:])), ious
    assert ious[-1] >= 0.995
    sil = _soft(v, f, cam, 1e-6)[0].numpy()
    assert np.abs(sil - hard).max() < 1e-3 or (np.abs(sil - hard) > 1e-3).sum() <= 2


def test_gradients_match_finite_differences():
    v, f = _mesh()
    cam = Camera(0.8, 1.1, 2.6, size=24)
    weights = torch.tensor(np.random.default_rng(0).uniform(-1, 1, (24, 24)))
    sil, params = _soft(v, f, cam, 2.0, requires_grad=True)
    (sil * weights).sum().backward()
    h = 1e-6
    for i, name in enumerate(("azimuth", "elevation", "distance")):
        plus, minus = replace(cam, **{name: getattr(cam, name) + h}), replace(cam, **{name: getattr(cam, name) - h})
        numeric = float(((_soft(v, f, plus, 2.0)[0] - _soft(v, f, minus, 2.0)[0]) * weights).sum() / (2 * h))
        assert params[i].grad is not None
        assert abs(float(params[i].grad) - numeric) <= 1e-4 * max(1.0, abs(numeric)), name


def test_refinement_recovers_a_perturbed_camera():
    v, f = _mesh()
    truth = Camera(0.8, 1.1, 2.6, size=64)
    goal = rasterize(v, f, truth).mask
    start = replace(truth, azimuth=0.95, elevation=1.0, distance=2.9)
    full = refine_camera(v, f, goal, start, steps=40, lr=0.02)
    assert full.iou_after > max(0.9, full.iou_before + 0.1)
    assert abs(full.camera.azimuth - truth.azimuth) < 0.5 * abs(start.azimuth - truth.azimuth)
    assert abs(full.camera.distance - truth.distance) < 0.5 * abs(start.distance - truth.distance)
    assert full.losses[-1] < full.losses[0]
    # the reference: distance only; the angles stay where they were
    only = refine_camera(v, f, goal, replace(truth, distance=2.9), steps=30, lr=0.01, params=("distance",))
    assert only.camera.azimuth == pytest.approx(truth.azimuth) and only.camera.elevation == pytest.approx(
        truth.elevation)
    assert abs(only.camera.distance - truth.distance) < 0.5 * 0.3
    with pytest.raises(ValueError):
        refine_camera(v, f, goal[:10], start)


@pytest.mark.cuda
@requires_cuda
def test_soft_silhouette_on_cuda_matches_cpu():
    v, f = _mesh()
    cam = Camera(0.8, 1.1, 2.6, size=48)
    cpu, _ = _soft(v, f, cam, 0.5, dtype=torch.float32)
    gpu, params = _soft(v, f, cam, 0.5, dtype=torch.float32, device="cuda", requires_grad=True)
    gpu.sum().backward()
    np.testing.assert_allclose(gpu.detach().cpu().numpy(), cpu.numpy(), atol=1e-4)
    assert all(p.grad is not None and torch.isfinite(p.grad) for p in params)
    hard = rasterize(v, f, cam).mask
    result = refine_camera(v, f, hard, replace(cam, azimuth=0.9), steps=5, device="cuda")
    assert result.iou_after >= result.iou_before - 1e-9


def test_refine_camera_cli(tmp_path, capsys):
    import json

    from PIL import Image

    from kptool.cli.main import main
    from kptool.render import from_arrays

    v, f = _mesh()
    trimesh.Trimesh(v, f, process=False).export(tmp_path / "ring.ply")
    body = from_arrays(v, f)
    truth = Camera(math.radians(40), math.radians(70), 2.2 * body.size, tuple(body.centre), math.pi / 2, 64)
    Image.fromarray(rasterize(v, f, truth).mask.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    args = ["refine-camera", tmp_path / "ring.ply", "--silhouette", tmp_path / "mask.png", "--azimuth", 48,
            "--elevation", 62, "--distance", 2.5, "--steps", 40, "--lr", 0.02, "--device", "cpu", "--json"]
    assert main([str(a) for a in args]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["iou_after"] > result["iou_before"] + 0.1
    assert abs(result["azimuth"] - 40) < 4 and abs(result["distance"] - 2.2) < 0.15
    assert main([str(a) for a in args + ["--only-distance"]]) == 0
    only = json.loads(capsys.readouterr().out)
    assert only["refined"] == ["distance"] and only["azimuth"] == pytest.approx(48)
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(tmp_path / "bad.png")
    assert main([str(a) for a in args[:3] + [tmp_path / "bad.png"] + args[4:]]) == 2
    assert "square" in capsys.readouterr().err
