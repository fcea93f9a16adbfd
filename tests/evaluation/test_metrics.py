"""Ranking metrics against hand-computed values."""

import math

import pytest
import torch

from recommender.evaluation import like_accuracy, ranking_metrics


def test_worked_example():
    # One user, 6 items; relevant = {1, 3, 5}; ranked list (k=4): 3, 0, 5, 2
    relevant = torch.tensor([[False, True, False, True, False, True]])
    top = torch.tensor([[3, 0, 5, 2]])
    m = ranking_metrics(top, relevant)
    assert m["precision"].item() == pytest.approx(2 / 4)
    assert m["recall"].item() == pytest.approx(2 / 3)
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg"].item() == pytest.approx(dcg / idcg)
    # AP@4 = (P@1 * 1 + P@3 * 1) / min(3, 4) = (1 + 2/3) / 3
    assert m["map"].item() == pytest.approx((1 + 2 / 3) / 3)


def test_perfect_and_empty_lists():
    relevant = torch.tensor([[True, True, False, False], [False, False, False, True]])
    top = torch.tensor([[0, 1], [0, 1]])
    m = ranking_metrics(top, relevant)
    torch.testing.assert_close(m["ndcg"], torch.tensor([1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(m["map"], torch.tensor([1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(m["precision"], torch.tensor([1.0, 0.0], dtype=torch.float64))


def test_ideal_dcg_uses_at_most_k_positions():
    # 5 relevant items, k=2, both hits: nDCG must be exactly 1.
    relevant = torch.ones(1, 6, dtype=torch.bool)
    m = ranking_metrics(torch.tensor([[4, 2]]), relevant)
    assert m["ndcg"].item() == pytest.approx(1.0)
    assert m["recall"].item() == pytest.approx(2 / 6)


def test_like_accuracy():
    p = torch.tensor([0.9, 0.2, 0.5, 0.4])
    liked = torch.tensor([1, 0, 0, 1])
    assert like_accuracy(p, liked) == pytest.approx(0.5)
    assert math.isnan(like_accuracy(torch.tensor([]), torch.tensor([])))
