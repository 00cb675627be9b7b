"""SHOT (Tombari et al. 2010) against what is known analytically, and against a per-neighbour loop."""

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from kptool.baselines.shot import DESCRIPTOR_SIZE, local_reference_frames, shot_descriptors
from kptool.errors import KptoolError


def _surface(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-1, 1, (n, 2))
    z = 0.3 * np.sin(2 * xy[:, 0]) * np.cos(1.3 * xy[:, 1]) + 0.2 * xy[:, 0] ** 2
    return np.c_[xy, z], xy


def test_invariant_to_rotation_and_translation():
    points, xy = _surface()
    d = shot_descriptors(points, 0.3)
    rotation = Rotation.random(random_state=1).as_matrix()
    moved = shot_descriptors(points @ rotation.T + np.array([1.0, -2.0, 3.0]), 0.3)
    assert d.shape == (3000, DESCRIPTOR_SIZE)
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    assert np.abs(d - moved).max() < 1e-4
    # and it describes something: descriptors differ from point to point
    assert np.abs(d - d.mean(0)).max() > 0.1


def test_frames_are_right_handed_and_turn_with_the_cloud():
    points, _ = _surface(800)
    frames = local_reference_frames(points, 0.4)
    assert np.allclose(frames @ frames.transpose(0, 2, 1), np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(frames), 1.0)
    rotation = Rotation.random(random_state=2).as_matrix()
    turned = local_reference_frames(points @ rotation.T, 0.4)
    assert np.allclose(turned, frames @ rotation.T, atol=1e-8)


def test_on_a_plane():
    g = np.stack(np.meshgrid(np.linspace(-1, 1, 81), np.linspace(-1, 1, 81)), -1).reshape(-1, 2)
    plane = np.c_[g, np.zeros(len(g))]
    centre = int(np.argmin(np.linalg.norm(g, axis=1)))
    h = shot_descriptors(plane, 0.25)[centre].reshape(8, 2, 2, 11).astype(np.float64)
    h /= h.sum()
    # every neighbour's normal is parallel to z: all mass at cos = +-1 (first or last bin)
    assert h[..., 1:10].sum() < 1e-9
    # neighbours lie in the tangent plane (elevation 0): half to each hemisphere
    assert h.sum((0, 2, 3)) == pytest.approx([0.5, 0.5], abs=1e-9)
    # uniform density on a disc, linear split at R/4 and 3R/4 centres: outer share
    # = int_0^1 clamp(2t - 1/2, 0, 1) 2t dt = 7/24 + 7/16 = 0.7292
    assert h.sum((0, 1, 3))[1] == pytest.approx(7 / 24 + 7 / 16, abs=0.01)
    assert h.sum((1, 2, 3)) == pytest.approx(np.full(8, 1 / 8), abs=0.01)


def _reference(points, radius, i):
    """One point's descriptor, neighbour by neighbour and bin by bin."""
    frames = local_reference_frames(points, radius)
    hist = np.zeros((8, 2, 2, 11))

    def weights(u, bins, circular):
        out = {}
        lo = math.floor(u)
        for b, w in ((lo, 1 - (u - lo)), (lo + 1, u - lo)):
            b = b % bins if circular else min(max(b, 0), bins - 1)
            out[b] = out.get(b, 0.0) + w
        return out

    for j in range(len(points)):
        v = points[j] - points[i]
        dist = np.linalg.norm(v)
        if j == i or dist > radius:
            continue
        x, y, z = frames[i] @ v
        cos = float(np.clip(frames[j, 2] @ frames[i, 2], -1, 1))
        az = math.atan2(y, x) % (2 * math.pi)
        el = math.atan2(z, math.hypot(x, y))
        for a, wa in weights(az / (math.pi / 4) - 0.5, 8, True).items():
            for e, we in weights((el + math.pi / 2) / (math.pi / 2) - 0.5, 2, False).items():
                for r, wr in weights(dist / (radius / 2) - 0.5, 2, False).items():
                    for c, wc in weights((cos + 1) / 2 * 11 - 0.5, 11, False).items():
                        hist[a, e, r, c] += wa * we * wr * wc
    hist = hist.ravel()
    return hist / np.linalg.norm(hist)


def test_matches_a_per_neighbour_loop():
    points, _ = _surface(400, seed=3)
    d = shot_descriptors(points, 0.35)
    for i in (0, 57, 211):
        assert np.allclose(d[i], _reference(points, 0.35, i), atol=1e-6)


def test_bad_input():
    with pytest.raises(KptoolError, match="NaN"):
        shot_descriptors(np.array([[0.0, 0.0, np.nan]] * 4))
    with pytest.raises(KptoolError, match="radius"):
        shot_descriptors(np.zeros((4, 3)), radius=0.0)


def test_embedding_baselines():
    from kptool.baselines.embeddings import embedding_baseline

    points, _ = _surface(300)
    r = embedding_baseline("random-embedding", seed=4)
    assert r.embed(points).shape == (300, 128)
    assert np.array_equal(r.embed(points), r.embed(points.copy()))           # same shape, same embedding
    assert not np.array_equal(r.embed(points), embedding_baseline("random-embedding", seed=5).embed(points))
    shot = embedding_baseline("shot", radius=0.3)
    assert np.allclose(shot.embed(points), shot_descriptors(points, 0.3))
    with pytest.raises(KptoolError, match="not keypoints"):
        shot(points)
    with pytest.raises(KptoolError, match="unknown embedding baseline"):
        embedding_baseline("sift")
