"""Regularizer penalties by hand, and their closed-form gradients against autograd."""

from __future__ import annotations

import pytest
import torch

from recommender.core import optimizers, regularizers

W = torch.tensor([[1.0, -2.0], [0.5, 0.0]])


def test_penalty_values():
    # sum |w| = 3.5, sum w^2 = 5.25
    assert regularizers.l1(0.1)(W).item() == pytest.approx(0.35)
    assert regularizers.l2(0.01)(W).item() == pytest.approx(0.0525)
    assert regularizers.l1_l2(l1=0.1, l2=0.01)(W).item() == pytest.approx(0.4025)


@pytest.mark.parametrize("regularizer", [
    regularizers.l1(0.1), regularizers.l2(0.01), regularizers.l1_l2(l1=0.1, l2=0.01),
])
def test_gradient_matches_autograd(regularizer):
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    regularizer(w).backward()
    torch.testing.assert_close(regularizer.gradient(w.detach()), w.grad)


def test_gradient_added_to_outside_gradients():
    """The RBM's way: add reg.gradient(w) to its own statistics and hand both to an optimizer."""
    w = torch.tensor([1.0, -2.0])
    statistic = torch.tensor([0.5, 0.5])
    reg = regularizers.l2(0.1)
    optimizers.SGD(learning_rate=1.0).apply_gradients([(statistic + reg.gradient(w), w)])
    # gradient = 0.5 + 2 * 0.1 * w = [0.7, 0.1]
    assert w.tolist() == pytest.approx([0.3, -2.1])


def test_get_and_serialize_round_trip():
    assert isinstance(regularizers.get("l2"), regularizers.L2)
    assert regularizers.get(None) is None
    restored = regularizers.get(regularizers.serialize(regularizers.l1_l2(0.2, 0.3)))
    assert (restored.l1, restored.l2) == (0.2, 0.3)
    with pytest.raises(ValueError, match="Unknown regularizer: 'l3'"):
        regularizers.get("l3")
    with pytest.raises(ValueError, match="l2=-1.0"):
        regularizers.l2(-1.0)


@pytest.mark.parametrize("reg", [regularizers.l2(0.3), regularizers.l1(0.2),
                                 regularizers.L1L2(l1=0.1, l2=0.05), regularizers.Regularizer()])
def test_add_gradient_in_place_equals_adding_the_gradient(reg):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, generator=g)
    grad = torch.randn(5, 4, generator=g)
    expected = grad + reg.gradient(x)
    out = reg.add_gradient_(grad, x)
    assert out is grad  # in place: no temporary the size of x for l1/l2
    torch.testing.assert_close(out, expected)
