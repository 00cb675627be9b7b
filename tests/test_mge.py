"""Mean geodesic error (paper 002, Alg. 1, the authors' benchmark definition) on hand-worked cases."""

import math

import numpy as np
import pytest

from kptool.errors import KptoolError
from kptool.metrics.mge import mean_geodesic_error, nearest_embedding

INF = math.inf


def _case():
    """Three shapes of three points each; sets 0 and 1 on A and B, set 0 and set 7 on C."""
    emb = [np.array([[0, 0], [10, 0], [5, 5]], float),     # A
           np.array([[10, 0], [0, 0], [5, 5]], float),     # B: the two sets' embeddings swapped
           np.array([[0, 0], [9, 9], [1, 0]], float)]      # C
    ids = [np.array([0, 1]), np.array([0, 1]), np.array([0, 7])]
    index = [np.array([0, 1]), np.array([0, 1]), np.array([2, 1])]
    dist = [np.array([[0, 3, 1], [3, 0, 2]], float),        # rows: keypoints, columns: points
            np.array([[0, 2, 1], [2, 0, 1.5]], float),
            np.array([[2, 4, 0], [1, 1, 1]], float)]
    return emb, ids, index, dist


def test_hand_worked_value():
    emb, ids, index, dist = _case()
    r = mean_geodesic_error(emb, ids, index, dist)
    # set 0, ordered pairs (source -> target: nearest point on target, distance there):
    #   A->B: (0,0) -> B1, 2;  B->A: (10,0) -> A1, 3;  A->C: (0,0) -> C0, 2;  C->A: (1,0) -> A0, 0;
    #   B->C: (10,0) -> C2 (9 < 9.06), 0;  C->B: (1,0) -> B1, 2.   mean 9/6
    # set 1: A->B: (10,0) -> B0, 2;  B->A: (0,0) -> A0, 3.   mean 2.5
    # set 7 lies on one shape only: not scored
    assert r.per_set == pytest.approx({0: 1.5, 1: 2.5})
    assert r.pairs == {0: 6, 1: 2}
    assert r.mge == pytest.approx(2.0)
    assert r.unreachable == 0


def test_unreachable_pairs_are_misses_never_zero():
    emb, ids, index, dist = _case()
    dist[1][0, 1] = INF          # on B, set 0's point cannot reach point 1 (another part)
    worst = mean_geodesic_error(emb, ids, index, dist)
    # A->B and C->B land on B1: scored as the largest finite distance from B's set-0 point (1)
    assert worst.unreachable == 2
    assert worst.per_set[0] == pytest.approx((1 + 3 + 2 + 0 + 0 + 1) / 6)
    skipped = mean_geodesic_error(emb, ids, index, dist, unreachable="skip")
    assert skipped.unreachable == 2 and skipped.pairs[0] == 4
    assert skipped.per_set[0] == pytest.approx((3 + 2 + 0 + 0) / 4)
    assert skipped.mge == pytest.approx((1.25 + 2.5) / 2)
    with pytest.raises(KptoolError, match="policy"):
        mean_geodesic_error(emb, ids, index, dist, unreachable="zero")


def test_euclidean_variant():
    emb, ids, index, _ = _case()
    points = [np.array([[0, 0, 0], [1, 0, 0], [3, 0, 0]], float)] * 3
    keypoints = [p[i] for p, i in zip(points, index)]
    r = mean_geodesic_error(emb, ids, index, points=points, keypoints=keypoints, euclidean=True)
    # set 0 (annotated at point 0 on A and B, point 2 on C): A->B B1: 1; B->A A1: 1; A->C C0: 3; C->A A0: 0;
    # B->C C2: 0; C->B B1: 1  -> 6/6.  Set 1 (point 1): A->B B0: 1; B->A A0: 1 -> 1
    assert r.per_set == pytest.approx({0: 1.0, 1: 1.0})


def test_perfect_embeddings_score_zero_and_random_ones_do_not():
    rng = np.random.default_rng(0)
    n_shapes, n, k = 5, 50, 6
    ids = [np.arange(k)] * n_shapes
    index = [rng.choice(n, k, replace=False) for _ in range(n_shapes)]
    dist = []
    for i in range(n_shapes):
        d = rng.uniform(0.1, 1.0, (k, n))
        d[np.arange(k), index[i]] = 0.0
        dist.append(d)
    emb = []
    for i in range(n_shapes):
        e = rng.normal(size=(n, k)) + 10.0        # unannotated points far from every set
        e[index[i]] = np.eye(k)                    # set s -> one-hot s, on every shape
        emb.append(e)
    assert mean_geodesic_error(emb, ids, index, dist).mge == 0.0
    noisy = [rng.normal(size=(n, k)) for _ in range(n_shapes)]
    assert mean_geodesic_error(noisy, ids, index, dist).mge > 0.1


def test_nearest_embedding_matches_brute_force():
    rng = np.random.default_rng(1)
    q, e = rng.normal(size=(7, 5)), rng.normal(size=(40, 5))
    brute = np.array([np.argmin(((e - x) ** 2).sum(1)) for x in q])
    assert (nearest_embedding(q, e) == brute).all()


def test_inconsistent_inputs_are_refused():
    emb, ids, index, dist = _case()
    with pytest.raises(KptoolError, match="geodesic"):
        mean_geodesic_error(emb, ids, index)
    index[0] = np.array([0, 3])
    with pytest.raises(KptoolError, match="outside"):
        mean_geodesic_error(emb, ids, index, dist)
