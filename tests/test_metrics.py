"""Metrics: hand-worked cases and literal re-implementations of the reference scripts."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from kptool.data.transform import normalization
from kptool.errors import KptoolError
from kptool.metrics import (DEFAULT_LEVELS, dual_alignment_score, geodesic_miou_curve, miou_curve,
                            part_correspondence_ratio, perturb, repeatability)

# ---- literal re-implementations of the reference definitions (double loops, as written there) ----


def ref_forward(preds, gts, ids):
    """Skeleton Merger eval_keypointnet.py fwd_alignment_scores, per-keypoint loops."""
    labels = []
    for kp, gt, sid in zip(preds, gts, ids):
        labels.append([sid[int(np.argmin([np.sum((p - g) ** 2) for g in gt]))] for p in kp])
    acc = [np.mean(np.array(a) == np.array(b)) for a in labels for b in labels]
    return float(np.mean(acc))


def ref_backward(preds, gts, ids):
    """Skeleton Merger eval_keypointnet.py bwd_alignment_scores."""
    by_id = collections.defaultdict(list)
    for kp, gt, sid in zip(preds, gts, ids):
        for g, s in zip(gt, sid):
            by_id[int(s)].append(int(np.argmin([np.sum((p - g) ** 2) for p in kp])))
    q = [np.mean([a == b for a in v for b in v]) for v in by_id.values()]
    return float(np.mean(q))


def ref_miou(kpcd, pcs, gt_index, nfacts, thresholds):
    """Skeleton Merger eval_keypointnet.py mIoU, with clouds in the original frame."""
    kps, gts = [], []
    for kp, pc, gi, (dmax, dmin) in zip(kpcd, pcs, gt_index, nfacts):
        gts.append(pc[gi])
        npc = 2.0 * ((pc - dmin) / (dmax - dmin) - 0.5)
        dist = np.sqrt(np.sum(np.square(kp[:, None] - npc[None]), -1))
        kps.append(pc[np.argmin(dist, -1)])
    out = []
    for t in thresholds:
        npos = fp = fn = 0
        for gt, kp in zip(gts, kps):
            dist = np.sqrt(np.sum(np.square(kp[:, None] - gt[None]), -1))
            npos += len(np.min(dist, -2))
            fp += np.count_nonzero(np.min(dist, -1) > t)
            fn += np.count_nonzero(np.min(dist, -2) > t)
        out.append((npos - fn) / (npos + fp))
    return np.array(out)


def ref_geodesic_iou(pred_idx, gt_idx, geo, t):
    """KeypointNet benchmark_scripts/metrics.py eval_det_cls_iou (all-pairs tables)."""
    npos = fp_sum = fn_sum = 0
    for p, g, d in zip(pred_idx, gt_idx, geo):
        npos += len(g)
        fp_sum += np.count_nonzero(np.all(d[p][:, g] > t, axis=-1))
        fn_sum += np.count_nonzero(np.all(d[g][:, p] > t, axis=-1))
    return (npos - fn_sum) / np.maximum(npos + fp_sum, np.finfo(np.float64).eps)


# ---- DAS ----

GT = np.array([[0.0, 0, 0], [1.0, 0, 0]])


def test_das_hand_worked():
    # A: predictions nearest to ids [0, 1]; B: both nearest to id 0 -> labels [0, 0].
    preds = [np.array([[0.1, 0, 0], [0.9, 0, 0]]), np.array([[0.1, 0, 0], [0.2, 0, 0]])]
    r = dual_alignment_score(preds, [GT, GT], [np.array([0, 1]), np.array([0, 1])])
    # forward: pairs AA 1, BB 1, AB 1/2, BA 1/2 -> 3/4. backward: both shapes map id0->0, id1->1 -> 1.
    assert r.forward == pytest.approx(0.75)
    assert r.backward == pytest.approx(1.0)
    assert r.das == pytest.approx(0.875)
    # per slot: slot 0 is id 0 on both (agrees 1), slot 1 is id 1 on A and id 0 on B (agrees 1/2)
    assert [slot.forward for slot in r.by_slot] == pytest.approx([1.0, 0.5])
    assert r.by_slot[1].labels == ((0, 0.5), (1, 0.5))
    assert r.by_slot[1].mean_distance == pytest.approx((0.1 + 0.2) / 2)
    # per id: id 1 is nearest to slot 1 on both shapes, at distances 0.1 and 0.8
    assert r.by_id[1].slots == ((1, 1.0),) and r.by_id[1].occurrences == 2
    assert r.by_id[1].mean_distance == pytest.approx((0.1 + 0.8) / 2)


def test_das_absent_ids_and_swaps():
    # C lacks id 1; its keypoints are swapped relative to A.
    preds = [np.array([[0.1, 0, 0], [0.9, 0, 0]]), np.array([[0.9, 0, 0], [0.1, 0, 0]])]
    r = dual_alignment_score(preds, [GT, GT[:1]], [np.array([0, 1]), np.array([0])])
    # forward labels A [0, 1], C [0, 0]: AA 1, CC 1, AC 1/2, CA 1/2 -> 3/4
    assert r.forward == pytest.approx(0.75)
    # backward: id0 -> [0 (A), 1 (C)]: 2 of 4 ordered pairs agree; id1 -> [1]: 1 -> mean 3/4
    assert r.backward == pytest.approx(0.75)


def test_das_matches_literal_reference_on_random_inputs():
    rng = np.random.default_rng(3)
    for _ in range(5):
        s, k = 7, 5
        preds = [rng.normal(size=(k, 3)) for _ in range(s)]
        gts, ids = [], []
        for _ in range(s):
            m = int(rng.integers(1, 8))
            gts.append(rng.normal(size=(m, 3)))
            ids.append(rng.integers(0, 6, size=m))   # absent and repeated ids included
        r = dual_alignment_score(preds, gts, ids)
        assert r.forward == pytest.approx(ref_forward(preds, gts, ids), abs=1e-12)
        assert r.backward == pytest.approx(ref_backward(preds, gts, ids), abs=1e-12)
        for slot in r.by_slot:   # each slot alone is the reference run on that one keypoint
            one = [p[slot.slot:slot.slot + 1] for p in preds]
            assert slot.forward == pytest.approx(ref_forward(one, gts, ids), abs=1e-12)
        for entry in r.by_id:    # each id alone is the reference run on its annotations only
            keep = [i == entry.id for i in ids]
            sub = [(p, g[m], i[m]) for p, g, i, m in zip(preds, gts, ids, keep) if m.any()]
            assert entry.backward == pytest.approx(ref_backward(*zip(*sub)), abs=1e-12)
            assert entry.occurrences == sum(int(m.sum()) for m in keep)
            assert sum(share for _, share in entry.slots) == pytest.approx(1.0)


def test_das_errors():
    with pytest.raises(KptoolError, match="same number of keypoints"):
        dual_alignment_score([GT, GT[:1]], [GT, GT], [np.array([0, 1])] * 2)
    with pytest.raises(KptoolError, match="no shape has any"):
        dual_alignment_score([GT], [np.zeros((0, 3))], [np.zeros(0, int)])
    with pytest.raises(KptoolError, match="no shapes"):
        dual_alignment_score([], [], [])


# ---- mIoU ----

def test_miou_hand_worked():
    pred = [np.array([[0.05, 0, 0], [0.5, 0, 0]])]
    c = miou_curve(pred, [GT], thresholds=[0.01, 0.06, 0.6])
    # t=0.01: FP 2, FN 2 -> 0; t=0.06: FP 1, FN 1 -> 1/3; t=0.6: 1
    np.testing.assert_allclose(c.y, [0.0, 1 / 3, 1.0])
    # scale 2: distances halve in the original frame
    c2 = miou_curve(pred, [GT], thresholds=[0.01, 0.03, 0.3], scales=[2.0])
    np.testing.assert_allclose(c2.y, [0.0, 1 / 3, 1.0])
    assert c.at(0.06) == pytest.approx(1 / 3)


def test_miou_snaps_to_cloud_points():
    cloud = np.array([[0.0, 0, 0], [0.5, 0, 0], [1.0, 0, 0]])
    c = miou_curve([np.array([[0.2, 0, 0]])], [GT], thresholds=[0.0], points=[cloud])
    # snapped onto (0,0,0) exactly: FP 0, FN 1 (the annotation at x=1) -> 1/2
    assert c.y[0] == pytest.approx(0.5)


def test_miou_matches_skeleton_merger_script():
    rng = np.random.default_rng(5)
    pcs, kpcd, gt_idx, nfacts, prepared, annotated, scales = [], [], [], [], [], [], []
    for _ in range(4):
        pc = rng.normal(size=(200, 3)) * [0.4, 0.2, 0.3] + rng.normal(size=3) * 0.1
        gi = rng.choice(200, 6, replace=False)
        t = normalization(pc, "skeleton-merger")
        nfacts.append((pc.max(), pc.min()))
        kp = t.apply(pc[rng.choice(200, 10)]) + rng.normal(size=(10, 3)) * 0.05   # normalised-frame predictions
        pcs.append(pc), kpcd.append(kp), gt_idx.append(gi)
        prepared.append(t.apply(pc)), annotated.append(t.apply(pc[gi])), scales.append(t.scale)
    thresholds = np.linspace(0, 0.1)
    ours = miou_curve(kpcd, annotated, thresholds, points=prepared, scales=scales)
    np.testing.assert_allclose(ours.y, ref_miou(kpcd, pcs, gt_idx, nfacts, thresholds), atol=1e-12)


def test_geodesic_miou_matches_keypointnet_script():
    rng = np.random.default_rng(7)
    preds, gts, tables, rows = [], [], [], []
    for _ in range(3):
        x = rng.random((60, 3))
        d = np.linalg.norm(x[:, None] - x[None], axis=-1) * 0.2   # symmetric "geodesic" table
        d[:5, 30:] = d[30:, :5] = np.inf                             # unreachable pairs
        g, p = rng.choice(60, 5, replace=False), rng.choice(60, 8, replace=False)
        preds.append(p), gts.append(g), tables.append(d), rows.append(d[g])
    curve = geodesic_miou_curve(preds, rows)
    expected = [ref_geodesic_iou(preds, gts, tables, t) for t in curve.x]
    np.testing.assert_allclose(curve.y, expected, atol=1e-12)


# ---- part correspondence ----

def test_part_correspondence_hand_worked():
    cloud = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]])
    labels = np.array([1, 2, 3])
    # keypoint 0 lands on parts 1, 1, 2 -> 2/3; keypoint 1 on 3, 3, 3 -> 1
    kps = [np.array([[0.1, 0, 0], [0, 0.9, 0]]), np.array([[0, 0, 0.1], [0, 1.2, 0]]),
           np.array([[0.8, 0, 0], [0.1, 0.8, 0]])]
    r = part_correspondence_ratio(kps, [cloud] * 3, [labels] * 3)
    np.testing.assert_allclose(r.per_index, [2 / 3, 1.0])
    assert r.ratio == pytest.approx(5 / 6)


def test_part_correspondence_matches_literal_definition():
    rng = np.random.default_rng(11)
    kps, clouds, labels = [], [], []
    for _ in range(6):
        clouds.append(rng.random((50, 3)))
        labels.append(rng.integers(0, 4, 50))
        kps.append(rng.random((int(rng.integers(3, 6)), 3)))   # varying counts: index k over shapes having it
    ratios = []
    for k in range(max(len(x) for x in kps)):
        lab = [int(l[np.argmin(np.linalg.norm(c - kp[k], axis=1))]) for kp, c, l in zip(kps, clouds, labels)
               if len(kp) > k]
        ratios.append(collections.Counter(lab).most_common(1)[0][1] / len(lab))
    r = part_correspondence_ratio(kps, clouds, labels)
    np.testing.assert_allclose(r.per_index, ratios)


# ---- repeatability ----

class _Fixed:
    """Always the same point (not equivariant): moves by 2 sin(theta/2) under a rotation."""
    name, ordered = "fixed", True

    def __call__(self, points):
        return np.array([[1.0, 0.0, 0.0]], dtype=np.float32)

    def detect_batch(self, clouds):
        return [self(c) for c in clouds]


class _Centroid(_Fixed):
    """Rotation-equivariant (about the origin) detector."""
    name = "centroid"

    def __call__(self, points):
        return np.asarray(points, dtype=np.float32).mean(axis=0, keepdims=True)


def test_repeatability_hand_worked():
    cloud = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32) + [2, 0, 0]
    levels = [0.0, 5.0, 90.0]   # fixed point moves 0, 0.087, 1.41
    for pert in ("rotation-up", "rotation-so3"):
        np.testing.assert_allclose(repeatability(_Fixed(), [cloud], pert, levels).y, [1, 1, 0])
        np.testing.assert_allclose(repeatability(_Centroid(), [cloud], pert, levels).y, [1, 1, 1])
    # noise of sigma 0.001 moves a 300-point centroid by ~1e-4
    assert repeatability(_Centroid(), [cloud], "noise", [0.0, 0.001]).y.tolist() == [1.0, 1.0]
    # threshold in the original frame: scale 100 shrinks every move below 0.1
    assert repeatability(_Fixed(), [cloud], "rotation-up", [90.0], scales=[100.0]).y[0] == 1.0


def test_repeatability_under_translation_and_scale():
    """Detected as given, a fixed point is not repeatable once the cloud moves or grows; through the
    detector's frame (centred, scaled) every detector is, even one that ignores its input."""
    cloud = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
    moves = [0.0, 0.05, 1.0, 100.0]
    np.testing.assert_allclose(repeatability(_Fixed(), [cloud], "translation", moves).y, [1, 1, 0, 0])
    np.testing.assert_allclose(repeatability(_Centroid(), [cloud], "translation", moves).y, [1, 1, 1, 1])
    # scaling about the origin by 2 moves (1, 0, 0) back to (0.5, 0, 0): 0.5 away
    np.testing.assert_allclose(repeatability(_Fixed(), [cloud], "scale", [1.0, 1.05, 2.0]).y, [1, 1, 0])
    for pert, levels in (("translation", moves), ("scale", [0.01, 1.0, 100.0])):
        y = repeatability(_Fixed(), [cloud], pert, levels, normalize="skeleton-merger").y
        np.testing.assert_allclose(y, np.ones(len(levels)))
    q, transform = perturb(cloud, "translation", 2.0, np.random.default_rng(3))
    assert np.linalg.norm(transform.matrix[:3, 3]) == pytest.approx(2.0)
    np.testing.assert_allclose(q - cloud, np.broadcast_to(transform.matrix[:3, 3], cloud.shape), atol=1e-5)


def test_perturbations():
    rng = np.random.default_rng(1)
    p = rng.normal(size=(100, 3))
    q, transform = perturb(p, "rotation-so3", 30.0, rng)
    rot = transform.matrix[:3, :3]
    assert Rotation.from_matrix(rot).magnitude() == pytest.approx(np.deg2rad(30))
    np.testing.assert_allclose(q, p @ rot.T, atol=1e-5)
    q, rot = perturb(p, "rotation-up", 45.0, rng)
    np.testing.assert_allclose(q[:, 1], p[:, 1], atol=1e-5)          # y is the up axis
    q, _ = perturb(p, "decimation", 0.25, rng)
    assert len(q) == 75 and len(np.unique(q, axis=0)) == 75
    with pytest.raises(KptoolError):
        perturb(p, "shear", 1.0, rng)
    assert set(DEFAULT_LEVELS) == {"noise", "rotation-up", "rotation-so3", "decimation", "translation", "scale"}


def test_part_segmentation_miou_hand_worked():
    from types import SimpleNamespace

    from kptool.data.shape import Shape
    from kptool.metrics import METRICS, EvalContext

    truth = np.array([1, 1, 2, 2, 3])
    logits = np.eye(4)[[1, 2, 2, 2, 3]]          # predicts 1, 2, 2, 2, 3
    shape = Shape(points=np.zeros((5, 3), np.float32), id="s", point_labels=truth)
    ctx = EvalContext(SimpleNamespace(manifest={"part_names": {"1": "a", "2": "b", "3": "c", "4": "d"}}), [shape],
                      {"point_logits": [logits]})
    result = METRICS.build({"name": "part-miou"}).compute(ctx)
    # part 1: 1/2, part 2: 2/3, part 3: 1, part 4 absent from both: 1
    assert result["miou"] == pytest.approx((0.5 + 2 / 3 + 1 + 1) / 4)
