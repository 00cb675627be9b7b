"""Property metrics (paper 001, Table 1) and Umeyama registration on hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from kptool.errors import KptoolError
from kptool.metrics.properties import (
    box_coverage,
    chamfer,
    correspondence,
    frame_scale,
    inclusivity,
    keypoint_properties,
    model_error,
    nms_merge,
    symmetry_error_deg,
)
from kptool.registration import rotation_about_up, rotation_error_deg, similarity_transform

CUBE2 = np.array([[x, y, z] for x in (0.0, 2.0) for y in (0.0, 2.0) for z in (0.0, 2.0)])


def test_box_coverage_is_the_intersection_volume_share():
    # Keypoint box [1,3]x[0,2]x[0,1] meets the cloud box [0,2]^3 in [1,2]x[0,2]x[0,1]: volume 2 of 8.
    kps = np.array([[1.0, 0.0, 0.0], [3.0, 2.0, 1.0]])
    assert box_coverage(kps, CUBE2) == pytest.approx(0.25)
    assert box_coverage(CUBE2, CUBE2) == pytest.approx(1.0)
    assert box_coverage(np.array([[5.0, 5, 5], [6, 6, 6]]), CUBE2) == 0.0
    with pytest.raises(KptoolError, match="flat"):
        box_coverage(kps, CUBE2 * [1, 1, 0])


def test_chamfer_and_model_error():
    a, b = np.zeros((1, 3)), np.array([[1.0, 0, 0], [3.0, 0, 0]])
    assert chamfer(a, b) == pytest.approx(0.5 * (1.0 + 2.0))      # a->b: 1; b->a: (1 + 3) / 2
    cloud = np.array([[0.0, 0, 0], [4.0, 1, 1]])                    # longest side 4
    assert frame_scale(cloud) == 2.0
    assert model_error(a, b, cloud) == pytest.approx(1.5 / 4.0)


def test_inclusivity_threshold_scales_with_the_frame():
    cloud = np.array([[0.0, 0, 0], [2.0, 0.5, 0.5]])                # longest side 2: threshold 0.015
    kps = np.array([[0.0, 0.010, 0], [0.0, 0.014, 0], [0.0, 0.020, 0]])
    assert inclusivity(kps, cloud) == pytest.approx(2 / 3)
    assert inclusivity(kps * 10, cloud * 10) == pytest.approx(2 / 3)  # the same shape ten times larger
    assert inclusivity(kps, cloud, threshold=0.05) == 1.0


def test_eval_all_threshold_does_not_reach_inclusivity():
    """``kptool eval all`` passes its --threshold (mIoU's 0.1) to every metric taking ``threshold``:
    inclusivity must keep the paper's 0.015 unless asked by its own option."""
    from kptool.metrics import build_metric
    from kptool.metrics.properties import INCLUSIVITY_THRESHOLD

    assert build_metric("inclusivity", threshold=0.1, frame="prepared").threshold == INCLUSIVITY_THRESHOLD
    assert build_metric("inclusivity", inclusivity_threshold=0.05).threshold == 0.05


def test_symmetry_error_ignores_the_normal_sign():
    assert symmetry_error_deg([1, 0, 0], [-1, 0, 0]) == pytest.approx(0.0, abs=1e-6)
    assert symmetry_error_deg([1, 0, 0], [-1, 0, 1]) == pytest.approx(45.0)
    assert symmetry_error_deg([0, 0, 2], [1, 0, 0]) == pytest.approx(90.0)


def test_nms_merge_replaces_chains_within_the_radius_by_their_mean():
    kps = np.array([[1.0, 0, 0], [0.0, 0, 0], [0.1, 0, 0], [0.25, 0, 0]])
    merged, labels = nms_merge(kps)                                 # 0-0.1-0.25 chain (gaps 0.1, 0.15)
    assert labels.tolist() == [0, 1, 1, 1]
    np.testing.assert_allclose(merged, [[1.0, 0, 0], [0.35 / 3, 0, 0]])
    merged, labels = nms_merge(kps, scale=0.5)                      # radius 0.1: 0.25 stands alone
    assert labels.tolist() == [0, 1, 1, 2] and len(merged) == 3


def _ordered_sets(swap_last: bool):
    anchors = np.array([[0.0, 0, 0], [10.0, 0, 0], [0.0, 10, 0]])
    rng = np.random.default_rng(0)
    sets = anchors[None] + rng.normal(0, 0.05, (4, 3, 3))
    if swap_last:
        sets[3, [0, 1]] = sets[3, [1, 0]]
    return sets


def test_correspondence_counts_keypoints_in_their_slots_cluster():
    assert correspondence(_ordered_sets(False)).score == 1.0
    result = correspondence(_ordered_sets(True))                    # shape 3 swaps slots 0 and 1
    assert result.score == pytest.approx(10 / 12)
    np.testing.assert_allclose(result.per_slot, [0.75, 0.75, 1.0])
    # A duplicated slot (always on slot 2) is one keypoint: grouped, not split by K-means.
    dup = _ordered_sets(True)
    dup = np.concatenate([dup, dup[:, 2:3] + 0.01], axis=1)
    result = correspondence(dup)
    assert result.groups.tolist() == [0, 1, 2, 2] and result.score == pytest.approx(14 / 16)


def test_correspondence_of_a_random_order_is_low():
    sets = _ordered_sets(False)
    rng = np.random.default_rng(1)
    shuffled = np.stack([s[rng.permutation(3)] for s in np.repeat(sets, 10, axis=0)])
    assert correspondence(shuffled).score < 0.7


def test_keypoint_properties_say_what_does_not_apply():
    clouds = [CUBE2, CUBE2 + 1.0]
    kps = [CUBE2[[0, 7]], CUBE2[[0, 7]] + 1.0]
    report = keypoint_properties(clouds, kps)
    assert report["coverage"]["value"] == pytest.approx(1.0)
    assert report["inclusivity"]["value"] == 1.0 and report["correspondence"]["value"] == 1.0
    assert report["model_error"]["value"] is None and "nodes" in report["model_error"]["reason"]
    assert report["symmetry_error"]["value"] is None and "plane" in report["symmetry_error"]["reason"]
    assert report["definition"]["value"] == 2.0 and report["definition"]["constant"]
    report = keypoint_properties(clouds, kps, nodes=kps, normals=[[1, 0, 0], [1, 0, 1]],
                                 true_planes=[[1, 0, 0, 0], [1, 0, 0, 0]])
    assert report["model_error"]["value"] == 0.0
    assert report["symmetry_error"]["value"] == pytest.approx(22.5)
    report = keypoint_properties(clouds, kps, normals=[[1, 0, 0]] * 2, true_planes=[None, None])
    assert "no true symmetry plane" in report["symmetry_error"]["reason"]


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(3)
    src = rng.normal(size=(10, 3))
    rot = rotation_about_up(37.0) @ np.array([[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])
    dst = 1.7 * src @ rot.T + [0.5, -2.0, 3.0]
    fit = similarity_transform(src, dst)
    assert fit.scale == pytest.approx(1.7)
    np.testing.assert_allclose(fit.rotation, rot, atol=1e-9)
    np.testing.assert_allclose(fit.apply(src), dst, atol=1e-9)
    np.testing.assert_allclose(fit.matrix()[:3, 3], [0.5, -2.0, 3.0], atol=1e-9)
    assert rotation_error_deg(fit.rotation, rot) == pytest.approx(0.0, abs=1e-4)
    assert similarity_transform(src, dst, with_scale=False).scale == 1.0
    # Noisy correspondences: still the least-squares fit (residual below the noise).
    noisy = dst + rng.normal(0, 0.01, dst.shape)
    assert np.abs(similarity_transform(src, noisy).apply(src) - noisy).max() < 0.05


def test_rotation_error_and_about_up():
    assert rotation_error_deg(rotation_about_up(30.0), np.eye(3)) == pytest.approx(30.0)
    assert rotation_error_deg(rotation_about_up(-170.0), rotation_about_up(170.0)) == pytest.approx(20.0)
    np.testing.assert_allclose(rotation_about_up(90.0) @ [1.0, 0, 0], [0, 0, -1.0], atol=1e-12)


def test_registration_rejects_degenerate_input():
    with pytest.raises(KptoolError, match="collinear"):
        similarity_transform(np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]), np.zeros((3, 3)))
    with pytest.raises(KptoolError, match="equal K"):
        similarity_transform(np.zeros((4, 3)), np.zeros((3, 3)))


def test_registration_curve_of_an_equivariant_and_of_a_blind_detector():
    from kptool.metrics.registration_curve import pick_templates, registration_curve

    rng = np.random.default_rng(0)
    clouds = [rng.normal(size=(50, 3)) for _ in range(3)]
    angles = [0.0, 30.0, 60.0]
    # Keypoints that turn with the cloud, registered to the unturned shape itself: no error.
    curve = registration_curve(lambda cs: [c[:6] for c in cs], clouds[:1], clouds[:1], angles)
    np.testing.assert_allclose(curve.mean, 0.0, atol=1e-4)
    # Keypoints that ignore the input: the fit is the identity, the error the misalignment itself.
    fixed = rng.normal(size=(6, 3))
    curve = registration_curve(lambda cs: [fixed for _ in cs], clouds, clouds[:2], angles)
    assert curve.errors.shape == (3, 3, 2)
    np.testing.assert_allclose(curve.mean, angles, atol=1e-4)
    np.testing.assert_allclose(curve.median, angles, atol=1e-4)
    assert [r[0] for r in curve.rows()] == angles
    picked = pick_templates(10, 3, seed=1)
    assert len(set(picked)) == 3 and all(0 <= i < 10 for i in picked) and picked == pick_templates(10, 3, seed=1)


def test_symmetry_pictures_are_written(tmp_path):
    from kptool.viz.symmetry import plot_slot_clusters, plot_symmetry_plane

    rng = np.random.default_rng(0)
    cloud = rng.uniform(-1, 1, (300, 3))
    path = plot_symmetry_plane(cloud, cloud[:6], [1.0, 0.0, 0.2], tmp_path / "plane.png")
    assert path.stat().st_size > 1000
    path = plot_slot_clusters(rng.normal(size=(20, 6, 3)), tmp_path / "clusters.png", points=cloud)
    assert path.stat().st_size > 1000
    with pytest.raises(KptoolError, match="normal"):
        plot_symmetry_plane(cloud, cloud[:6], [0.0, 0.0, 0.0], tmp_path / "x.png")
