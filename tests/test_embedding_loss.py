"""The pull + geodesic-consistency push loss on hand-worked cases (paper 002, eqs. 1-4)."""

import math

import pytest
import torch

from kptool.errors import KptoolError
from kptool.losses.embedding import geodesic_consistency_loss

NAN = float("nan")


def test_hand_case_with_one_hard_negative():
    # points 0 and 2 share set 0; point 1 is set 1; D(0, 1) = 10
    e = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]], requires_grad=True)
    ids = torch.tensor([0, 1, 0])
    rows = torch.tensor([[0.0, 10.0], [10.0, 0.0], [0.0, 10.0]])
    loss, parts = geodesic_consistency_loss(e, ids, rows)
    # pull: |e0 - e2|^2 = 1. negatives: (0,1) at 5 -> 25, (1,2) at sqrt(18) -> (10 - sqrt 18)^2;
    # one positive, so only the most violating negative (1,2) is kept
    push = (10 - math.sqrt(18)) ** 2
    assert loss.item() == pytest.approx((1 + push) / 2, rel=1e-6)
    assert parts["positives"] == 1 and parts["negatives"] == 1
    assert parts["push"] == pytest.approx(push, rel=1e-6)
    loss.backward()
    # d/de0 of |e0 - e2|^2 / 2 = (e0 - e2) = (0, -1); e0 is not in the kept negative
    assert torch.allclose(e.grad[0], torch.tensor([0.0, -1.0]))


def test_all_negatives_without_hard_mining_and_lambda():
    e = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    ids = torch.tensor([0, 1, 0])
    rows = torch.tensor([[0.0, 10.0], [10.0, 0.0], [0.0, 10.0]])
    loss, parts = geodesic_consistency_loss(e, ids, rows, push_weight=0.5, hard_negatives=False)
    push = 25 + (10 - math.sqrt(18)) ** 2
    assert loss.item() == pytest.approx((1 + 0.5 * push) / 3, rel=1e-6)
    assert parts["negatives"] == 2


def test_satisfied_pushes_cost_nothing_and_unknown_distances_are_left_out():
    # set 0 and set 1 are 2 apart in D, embeddings 5 apart: no push. Set 2's D is unknown (NaN).
    e = torch.tensor([[0.0], [5.0], [0.0], [1.0]])
    ids = torch.tensor([0, 1, 0, 2])
    row0, row1, row2 = [0.0, 2.0, NAN], [2.0, 0.0, NAN], [NAN, NAN, 0.0]
    loss, parts = geodesic_consistency_loss(e, ids, torch.tensor([row0, row1, row0, row2]))
    # pull (0,2) = 0; negatives with known D: (0,1), (1,2) both at 5 >= 2 -> 0
    assert loss.item() == 0.0
    assert parts["negatives"] == 1 and parts["positives"] == 1


def test_collapsed_embeddings_get_finite_gradients():
    e = torch.zeros(4, 3, requires_grad=True)
    ids = torch.tensor([0, 0, 1, 1])
    rows = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    loss, _ = geodesic_consistency_loss(e, ids, rows)
    assert loss.item() == pytest.approx((0 + 0 + 1 + 1) / 4, rel=1e-5)   # 2 pulls at 0, 2 of 4 negatives at (1 - 0)^2
    loss.backward()
    assert torch.isfinite(e.grad).all()


def test_training_separates_sets_in_proportion_to_their_distance():
    torch.manual_seed(0)
    ids = torch.tensor([0, 1, 2] * 4)
    d = torch.tensor([[0.0, 1.0, 3.0], [1.0, 0.0, 2.0], [3.0, 2.0, 0.0]])
    rows = d[ids]
    e = torch.nn.Parameter(torch.randn(12, 8) * 0.01)
    opt = torch.optim.Adam([e], lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        loss, _ = geodesic_consistency_loss(e, ids, rows)
        loss.backward()
        opt.step()
    centres = torch.stack([e.detach()[ids == s].mean(0) for s in range(3)])
    spread = max(float((e.detach()[ids == s] - centres[s]).norm(dim=1).max()) for s in range(3))
    assert spread < 0.05
    gaps = torch.cdist(centres, centres)
    assert float(gaps[0, 1]) >= 0.95 and float(gaps[1, 2]) >= 1.9 and float(gaps[0, 2]) >= 2.9


def test_bad_shapes_are_refused():
    with pytest.raises(KptoolError, match="column"):
        geodesic_consistency_loss(torch.zeros(2, 3), torch.tensor([0, 4]), torch.zeros(2, 2))
