"""kptool.ops against the plain reference implementations and hand-worked cases.

Every op is checked three ways where it applies: the dispatched op (numba on
CPU), the pure-torch path (what CUDA runs) called on CPU, and
:mod:`kptool.ops.reference`.
"""

from __future__ import annotations

import pytest
import torch

from kptool.ops import ball_query, chamfer_distance, farthest_point_sampling, gather, knn, three_nn_interpolate
from kptool.ops import reference as ref
from kptool.ops.neighbors import ball_query_torch, knn_torch
from kptool.ops.sampling import fps_torch
from conftest import requires_cuda


def cloud(*shape, seed=0, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def full(B, n):
    return torch.full((B,), n, dtype=torch.int64)


def with_duplicates(B, distinct, copies, seed=0):
    """(B, distinct * copies, 3): every point repeated ``copies`` times, shuffled."""
    base = cloud(B, distinct, 3, seed=seed).repeat(1, copies, 1)
    order = torch.randperm(distinct * copies, generator=torch.Generator().manual_seed(seed + 1))
    return base[:, order].contiguous()


# ---------------------------------------------------------------- farthest point sampling

def test_fps_hand_worked_line():
    pts = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [3, 0, 0], [10, 0, 0]]])
    # from 0: distances 1, 9, 100 -> 3; then min(1, 81)=1, min(9, 49)=9 -> 2; then 1
    assert farthest_point_sampling(pts, 4).tolist() == [[0, 3, 2, 1]]
    assert farthest_point_sampling(pts, 2, start_index=3).tolist() == [[3, 0]]


@pytest.mark.parametrize("n,k", [(200, 50), (3000, 300)])
def test_fps_matches_reference_ragged(n, k):
    pts = cloud(3, n, 3, seed=n)
    lengths = torch.tensor([n, n // 2, 7])
    starts = torch.zeros(3, dtype=torch.int64)
    expected = ref.farthest_point_sampling(pts, k, lengths, starts)
    assert torch.equal(farthest_point_sampling(pts, k, lengths), expected)
    assert torch.equal(fps_torch(pts, k, lengths, starts), expected)


def test_fps_random_start_is_seeded_and_matches_reference():
    pts = cloud(4, 300, 3, seed=1)
    lengths = torch.tensor([300, 5, 100, 1])
    a = farthest_point_sampling(pts, 20, lengths, start_index="random", generator=torch.Generator().manual_seed(7))
    b = farthest_point_sampling(pts, 20, lengths, start_index="random", generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert (a[:, 0] < lengths).all()
    assert torch.equal(a, ref.farthest_point_sampling(pts, 20, lengths, a[:, 0]))


def test_fps_fewer_points_than_samples_takes_all_then_repeats_first():
    pts = cloud(2, 10, 3, seed=2)
    out = farthest_point_sampling(pts, 8, torch.tensor([10, 5]), start_index=3)
    assert sorted(out[1, :5].tolist()) == [0, 1, 2, 3, 4]
    assert out[1, 5:].tolist() == [3, 3, 3]
    assert len(set(out[0].tolist())) == 8


def test_fps_duplicates_never_repeat_an_index():
    pts = with_duplicates(2, 12, 4)  # 48 points, 12 distinct positions
    out = farthest_point_sampling(pts, 48)
    assert all(len(set(row)) == 48 for row in out.tolist())
    # the first 12 samples are the 12 distinct positions
    assert all(len({tuple(p) for p in pts[b, out[b, :12]].tolist()}) == 12 for b in range(2))
    expected = ref.farthest_point_sampling(pts, 48, full(2, 48), torch.zeros(2, dtype=torch.int64))
    assert torch.equal(out, expected)
    assert torch.equal(fps_torch(pts, 48, full(2, 48), torch.zeros(2, dtype=torch.int64)), expected)


def test_fps_degenerate_clouds():
    same = torch.ones(1, 100, 3)  # cannot be split by the tree: one big leaf
    assert farthest_point_sampling(same, 5).tolist() == [[0, 1, 2, 3, 4]]
    single = torch.zeros(1, 1, 3)
    assert farthest_point_sampling(single, 3).tolist() == [[0, 0, 0]]
    flat = cloud(2, 500, 3, seed=3)
    flat[..., 2] = 0.5  # a plane: zero extent along z
    expected = ref.farthest_point_sampling(flat, 40, full(2, 500), torch.zeros(2, dtype=torch.int64))
    assert torch.equal(farthest_point_sampling(flat, 40), expected)


def test_fps_accepts_double_and_rejects_bad_input():
    pts = cloud(1, 50, 3, dtype=torch.float64)
    assert farthest_point_sampling(pts, 10).shape == (1, 10)
    with pytest.raises(ValueError, match=r"points must have shape \(B, N, 3\)"):
        farthest_point_sampling(torch.rand(10, 3), 4)
    with pytest.raises(ValueError, match="num_samples"):
        farthest_point_sampling(pts, 0)
    with pytest.raises(ValueError, match="start_index 60 is outside"):
        farthest_point_sampling(pts, 4, start_index=60)
    with pytest.raises(ValueError, match="lengths must lie in"):
        farthest_point_sampling(pts, 4, lengths=torch.tensor([0]))
    with pytest.raises(TypeError, match="floating-point"):
        farthest_point_sampling(torch.ones(1, 4, 3, dtype=torch.int64), 2)


# ---------------------------------------------------------------- kNN

def test_knn_matches_reference_ragged():
    q, p = cloud(3, 70, 3, seed=4), cloud(3, 400, 3, seed=5)
    ql, pl = torch.tensor([70, 30, 1]), torch.tensor([400, 9, 200])
    d, i = knn(q, p, 16, ql, pl)
    dr, ir = ref.knn(q, p, 16, ql, pl)
    rows = torch.arange(70) < ql[:, None]
    assert torch.equal(i[rows], ir[rows])
    torch.testing.assert_close(d[rows], dr[rows])
    it = knn_torch(q, p, 16, pl)
    assert torch.equal(it[rows], ir[rows])


def test_knn_fewer_points_than_k_repeats_nearest():
    q, p = cloud(1, 5, 3, seed=6), cloud(1, 3, 3, seed=7)
    d, i = knn(q, p, 5)
    dr, ir = ref.knn(q, p, 5, full(1, 5), full(1, 3))
    assert torch.equal(i, ir) and torch.equal(i[..., 3:], i[..., :1].expand(-1, -1, 2))
    torch.testing.assert_close(d, dr)
    assert torch.equal(knn_torch(q, p, 5, full(1, 3)), ir)


def test_knn_ties_lowest_index_first():
    p = with_duplicates(2, 30, 3, seed=8)
    d, i = knn(p, p, 6)
    _, ir = ref.knn(p, p, 6, full(2, 90), full(2, 90))
    assert torch.equal(i, ir)
    assert (d[..., :3] == 0).all()
    # the torch path may order exact ties differently: compare sets
    assert torch.equal(knn_torch(p, p, 6, full(2, 90)).sort(-1).values, ir.sort(-1).values)


def test_knn_large_cloud_exercises_deep_tree():
    q, p = cloud(2, 300, 3, seed=9), cloud(2, 5000, 3, seed=10) ** 3  # skewed density
    _, i = knn(q, p, 8)
    assert torch.equal(i, knn_torch(q, p, 8, full(2, 5000)))


def test_knn_gradients():
    q, p = cloud(2, 6, 3, seed=11, dtype=torch.float64), cloud(2, 9, 3, seed=12, dtype=torch.float64)
    q.requires_grad_()
    p.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: knn(a, b, 3)[0], (q, p))


def test_knn_rejects_mismatched_batches():
    with pytest.raises(ValueError, match="points has batch size 3, expected 2"):
        knn(torch.rand(2, 5, 3), torch.rand(3, 5, 3), 2)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        knn(torch.rand(2, 5, 3), torch.rand(2, 5, 3), 0)


@pytest.mark.parametrize("dim", [1, 2, 5, 64])
def test_knn_any_dimension_matches_reference_ragged(dim):
    q, p = cloud(3, 40, dim, seed=40 + dim), cloud(3, 150, dim, seed=50 + dim)
    ql, pl = torch.tensor([40, 25, 1]), torch.tensor([150, 7, 90])  # cloud 1: fewer points than k
    d, i = knn(q, p, 10, ql, pl)
    dr, ir = ref.knn(q, p, 10, ql, pl)
    rows = torch.arange(40) < ql[:, None]
    assert torch.equal(i[rows], ir[rows])
    torch.testing.assert_close(d[rows], dr[rows])
    assert torch.equal(knn_torch(q, p, 10, pl)[rows], ir[rows])


def test_knn_features_far_from_the_origin_and_ties():
    # Tiny distances on huge norms: the rough BLAS table alone would misorder these.
    g = torch.Generator().manual_seed(60)
    p = 1000.0 + 1e-2 * torch.randn(2, 300, 32, generator=g)
    q = p[:, :50] + 1e-3 * torch.randn(2, 50, 32, generator=g)
    _, i = knn(q, p, 8)
    _, ir = ref.knn(q, p, 8, full(2, 50), full(2, 300))
    assert torch.equal(i, ir)
    # exact duplicates in feature space: lowest index first
    dup = cloud(1, 20, 16, seed=61).repeat(1, 3, 1)
    d, i = knn(dup, dup, 3)
    assert torch.equal(i[0, :20], torch.arange(20)[:, None] + torch.tensor([0, 20, 40]))
    assert (d == 0).all()


def test_knn_result_is_named_and_differentiable_in_any_dimension():
    q, p = cloud(2, 6, 7, seed=62, dtype=torch.float64), cloud(2, 9, 7, seed=63, dtype=torch.float64)
    out = knn(q, p, 3)
    assert out.dists is out[0] and out.idx is out[1] and out.idx.dtype == torch.int64
    q.requires_grad_()
    p.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: knn(a, b, 3).dists, (q, p))
    with pytest.raises(ValueError, match=r"points must have shape \(B, N, 7\), got \(2, 9, 3\)"):
        knn(q, torch.rand(2, 9, 3, dtype=torch.float64), 3)


# ---------------------------------------------------------------- ball query

def test_ball_query_hand_worked():
    pts = torch.tensor([[[0.0, 0, 0], [0.5, 0, 0], [2, 0, 0], [0.3, 0, 0], [1.0, 0, 0]]])
    q = torch.tensor([[[0.0, 0, 0], [5.0, 0, 0]]])
    out = ball_query(q, pts, 1.0, 4)
    # within (strictly) 1.0 of the origin: 0, 1, 3 (index order); 4 is at exactly 1.0
    assert out[0, 0].tolist() == [0, 1, 3, 0]
    assert out[0, 1].tolist() == [2, 2, 2, 2]  # empty: nearest point
    assert ball_query(q, pts, 1.0, 4, empty="zero")[0, 1].tolist() == [0, 0, 0, 0]
    assert ball_query(q, pts, 1.0, 2)[0, 0].tolist() == [0, 1]


@pytest.mark.parametrize("radius,samples", [(0.2, 16), (0.05, 8), (1e-4, 4), (5.0, 600)])
def test_ball_query_matches_reference(radius, samples):
    q, p = cloud(2, 40, 3, seed=13), cloud(2, 500, 3, seed=14)
    ql, pl = torch.tensor([40, 11]), torch.tensor([500, 77])
    rows = torch.arange(40) < ql[:, None]
    for empty in ("nearest", "zero"):
        expected = ref.ball_query(q, p, radius, samples, ql, pl, empty)
        assert torch.equal(ball_query(q, p, radius, samples, ql, pl, empty=empty)[rows], expected[rows])
        assert torch.equal(ball_query_torch(q, p, radius, samples, pl, empty)[rows], expected[rows])


def test_ball_query_duplicates_and_single_point():
    p = with_duplicates(1, 10, 5, seed=15)
    expected = ref.ball_query(p, p, 1e-3, 8, full(1, 50), full(1, 50))
    assert torch.equal(ball_query(p, p, 1e-3, 8), expected)
    one = torch.zeros(1, 1, 3)
    assert ball_query(torch.ones(1, 2, 3), one, 0.1, 3).tolist() == [[[0, 0, 0], [0, 0, 0]]]


def test_ball_query_rejects_bad_options():
    with pytest.raises(ValueError, match="radius must be positive"):
        ball_query(torch.rand(1, 2, 3), torch.rand(1, 5, 3), 0.0, 4)
    with pytest.raises(ValueError, match="empty must be"):
        ball_query(torch.rand(1, 2, 3), torch.rand(1, 5, 3), 0.1, 4, empty="pad")


# ---------------------------------------------------------------- gather and interpolation

def test_gather_matches_reference_and_has_gradients():
    feats = cloud(2, 7, 4, seed=16, dtype=torch.float64).requires_grad_()
    idx = torch.randint(0, 7, (2, 3, 5), generator=torch.Generator().manual_seed(0))
    assert torch.equal(gather(feats, idx), ref.gather(feats.detach(), idx))
    assert gather(feats, idx[:, 0, 0]).shape == (2, 4)
    assert torch.autograd.gradcheck(lambda f: gather(f, idx), (feats,))
    with pytest.raises(ValueError, match=r"idx values must lie in \[0, 7\)"):
        gather(feats, idx + 1)


@pytest.mark.parametrize("power", [1, 2])
def test_three_nn_interpolate_matches_reference(power):
    u, k = cloud(2, 30, 3, seed=17), cloud(2, 12, 3, seed=18)
    f = cloud(2, 12, 5, seed=19)
    kl = torch.tensor([12, 2])  # second cloud: fewer than 3 known points
    expected = ref.three_nn_interpolate(u, k, f, kl, power=power)
    torch.testing.assert_close(three_nn_interpolate(u, k, f, kl, power=power), expected)


def test_three_nn_interpolate_hand_worked_and_gradients():
    known = torch.tensor([[[0.0, 0, 0], [2, 0, 0], [10, 0, 0], [20, 0, 0]]], dtype=torch.float64)
    feats = torch.tensor([[[1.0], [4.0], [100.0], [7.0]]], dtype=torch.float64, requires_grad=True)
    unknown = torch.tensor([[[1.0, 0, 0], [2, 0, 0], [4, 0, 0]]], dtype=torch.float64)
    # x=1: distances 1, 1, 9 -> weights 1, 1, 1/81 (default: squared distances) over (1, 4, 100)
    out = three_nn_interpolate(unknown, known, feats)
    assert out[0, 0, 0].item() == pytest.approx((1 + 4 + 100 / 81) / (2 + 1 / 81))
    assert out[0, 1, 0].item() == pytest.approx(4.0, abs=1e-6)
    # x=4: distances 2, 4, 6 to (4, 1, 100) -> 1/4, 1/16, 1/36
    assert out[0, 2, 0].item() == pytest.approx((4 / 4 + 1 / 16 + 100 / 36) / (1 / 4 + 1 / 16 + 1 / 36))
    # power=1 (kptool 0.1): weights 1, 1, 1/9 and 1/2, 1/4, 1/6
    old = three_nn_interpolate(unknown, known, feats, power=1)
    assert old[0, 0, 0].item() == pytest.approx((1 + 4 + 100 / 9) / (2 + 1 / 9))
    assert old[0, 2, 0].item() == pytest.approx((4 / 2 + 1 / 4 + 100 / 6) / (1 / 2 + 1 / 4 + 1 / 6))
    assert torch.autograd.gradcheck(lambda f: three_nn_interpolate(unknown, known, f), (feats,))
    with pytest.raises(ValueError, match="power must be 1 or 2"):
        three_nn_interpolate(unknown, known, feats, power=3)


# ---------------------------------------------------------------- Chamfer distance

@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("two_sided", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_chamfer_matches_reference(squared, two_sided, reduction):
    x, y = cloud(3, 60, 3, seed=20), cloud(3, 45, 3, seed=21)
    xl, yl = torch.tensor([60, 10, 1]), torch.tensor([45, 45, 3])
    got = chamfer_distance(x, y, xl, yl, squared=squared, two_sided=two_sided, reduction=reduction)
    expected = ref.chamfer_distance(x, y, xl, yl, squared=squared, two_sided=two_sided, reduction=reduction)
    if reduction == "none":
        torch.testing.assert_close(got[0], expected[0])
        assert (got[1] is None) == (not two_sided)
        if two_sided:
            torch.testing.assert_close(got[1], expected[1])
    else:
        assert got.shape == ()
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("squared", [True, False])
def test_chamfer_search_route_of_cuda_matches_reference(squared):
    """The route CUDA takes (search by knn, then recompute), run on CPU tensors."""
    from kptool.ops.chamfer import _distances

    x, y = cloud(2, 50, 3, seed=32), cloud(2, 30, 3, seed=33)
    xl, yl = torch.tensor([50, 20]), torch.tensor([30, 5])
    expected = ref.chamfer_distance(x, y, xl, yl, squared=squared, reduction="none")[0]
    torch.testing.assert_close(_distances(x, y, xl, yl, squared, None), expected)


def test_chamfer_nearest_kernel_matches_reference_knn():
    """The seeded nearest-neighbour kernel behind Chamfer on CPU: indices, ties included."""
    from kptool.ops import _cpu

    x, y = with_duplicates(3, 40, 3, seed=30), with_duplicates(3, 25, 4, seed=31)
    xl, yl = torch.tensor([120, 50, 1]), torch.tensor([100, 3, 64])
    tx, ty = _cpu.build_trees(x.numpy(), xl.numpy(), 8), _cpu.build_trees(y.numpy(), yl.numpy(), 8)
    d, i = _cpu.nearest(tx, xl.numpy(), y.numpy(), ty)
    dr, ir = ref.knn(x, y, 1, xl, yl)
    rows = torch.arange(120) < xl[:, None]
    assert torch.equal(torch.from_numpy(i)[rows], ir[..., 0][rows])
    torch.testing.assert_close(torch.from_numpy(d)[rows], dr[..., 0][rows])


def test_chamfer_hand_worked():
    x = torch.tensor([[[0.0, 0, 0], [1, 0, 0]]])
    y = torch.tensor([[[0.0, 0, 2]]])
    # x -> y: 4, 5 (mean 4.5); y -> x: 4
    torch.testing.assert_close(chamfer_distance(x, y), torch.tensor(8.5))
    torch.testing.assert_close(chamfer_distance(x, y, two_sided=False, reduction="sum"), torch.tensor(9.0))
    torch.testing.assert_close(chamfer_distance(x, y, squared=False, reduction="none")[1], torch.tensor([[2.0]]))


@pytest.mark.parametrize("squared", [True, False])
def test_chamfer_gradients_match_reference(squared):
    x = cloud(2, 10, 3, seed=22, dtype=torch.float64).requires_grad_()
    y = cloud(2, 7, 3, seed=23, dtype=torch.float64).requires_grad_()
    xl, yl = torch.tensor([10, 4]), torch.tensor([7, 7])
    assert torch.autograd.gradcheck(lambda a, b: chamfer_distance(a, b, xl, yl, squared=squared), (x, y))
    got = torch.autograd.grad(chamfer_distance(x, y, xl, yl, squared=squared), (x, y))
    expected = torch.autograd.grad(ref.chamfer_distance(x, y, xl, yl, squared=squared), (x, y))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)


def test_chamfer_identical_clouds_zero_with_finite_gradients():
    x = cloud(1, 30, 3, seed=24).requires_grad_()
    loss = chamfer_distance(x, x.detach().clone(), squared=False)
    loss.backward()
    assert loss.item() == 0 and torch.isfinite(x.grad).all() and (x.grad == 0).all()


def test_chamfer_rejects_bad_reduction():
    with pytest.raises(ValueError, match="reduction must be one of"):
        chamfer_distance(torch.rand(1, 3, 3), torch.rand(1, 3, 3), reduction="max")


def test_package_example_runs():
    import kptool.ops

    code = kptool.ops.__doc__.split("::", 1)[1]
    scope = {}
    exec(code.replace("\n    ", "\n"), scope)  # the indented example block
    assert scope["groups"].shape == (8, 512, 32, 3) and scope["loss"].shape == ()


# ---------------------------------------------------------------- threading

def test_results_do_not_depend_on_thread_count():
    x, y = cloud(5, 700, 3, seed=28), cloud(5, 300, 3, seed=29)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = farthest_point_sampling(x, 64), knn(y, x, 4)[1], ball_query(y, x, 0.1, 8)
        torch.set_num_threads(3)  # more chunks than cores: still one answer
        multi = farthest_point_sampling(x, 64), knn(y, x, 4)[1], ball_query(y, x, 0.1, 8)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(single, multi):
        assert torch.equal(a, b)


def test_ops_work_in_a_forked_child_after_use_in_the_parent():
    import multiprocessing

    x = cloud(4, 500, 3, seed=34)
    expected = farthest_point_sampling(x, 32)  # starts the parent's thread pool
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(farthest_point_sampling, (x, 32)).get(timeout=60)
    assert torch.equal(got, expected)


# ---------------------------------------------------------------- CUDA paths

@requires_cuda
def test_ops_on_cuda_match_cpu():
    x, y = cloud(2, 300, 3, seed=25), cloud(2, 200, 3, seed=26)
    xl = torch.tensor([300, 120])
    xc, yc = x.cuda(), y.cuda()
    assert torch.equal(farthest_point_sampling(xc, 64, xl.cuda()).cpu(), farthest_point_sampling(x, 64, xl))
    d, i = knn(yc, xc, 8, points_lengths=xl.cuda())
    dc, ic = knn(y, x, 8, points_lengths=xl)
    assert torch.equal(i.cpu(), ic)
    torch.testing.assert_close(d.cpu(), dc)
    assert torch.equal(ball_query(yc, xc, 0.15, 16, points_lengths=xl.cuda()).cpu(),
                       ball_query(y, x, 0.15, 16, points_lengths=xl))
    f = cloud(2, 300, 6, seed=27)
    fq, fp = cloud(2, 100, 64, seed=28), cloud(2, 300, 64, seed=29)   # feature space, DGCNN's case
    di, ii = knn(fq.cuda(), fp.cuda(), 20, points_lengths=xl.cuda())
    dci, ici = knn(fq, fp, 20, points_lengths=xl)
    assert torch.equal(ii.cpu(), ici)
    torch.testing.assert_close(di.cpu(), dci)
    for power in (1, 2):
        torch.testing.assert_close(three_nn_interpolate(yc, xc, f.cuda(), power=power).cpu(),
                                   three_nn_interpolate(y, x, f, power=power))
    xr = xc.clone().requires_grad_()
    loss = chamfer_distance(xr, yc, x_lengths=xl.cuda())
    loss.backward()
    xcpu = x.clone().requires_grad_()
    loss_cpu = chamfer_distance(xcpu, y, x_lengths=xl)
    loss_cpu.backward()
    torch.testing.assert_close(loss.cpu(), loss_cpu)
    torch.testing.assert_close(xr.grad.cpu(), xcpu.grad)
