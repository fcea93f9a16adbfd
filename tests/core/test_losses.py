from __future__ import annotations

import math

import pytest
import torch

from recommender.core import activations, losses


def test_mean_squared_and_absolute_error():
    y_true = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    y_pred = torch.tensor([[1.5, 2.0], [2.0, 6.0]])
    # squared errors 0.25, 0, 1, 4 -> mean 1.3125; absolute 0.5, 0, 1, 2 -> 0.875
    assert losses.mean_squared_error(y_true, y_pred).item() == pytest.approx(1.3125)
    assert losses.mean_absolute_error(y_true, y_pred).item() == pytest.approx(0.875)
    assert losses.get("mse") is losses.mean_squared_error


def test_one_dimensional_targets_match_one_unit_outputs():
    y_pred = torch.tensor([[1.0], [3.0]])
    assert losses.mean_squared_error(torch.tensor([2.0, 3.0]), y_pred).item() == 0.5


def test_binary_crossentropy_from_probabilities_and_logits():
    logits = torch.tensor([[0.3], [-1.2], [2.0]])
    y_true = torch.tensor([[1.0], [0.0], [1.0]])
    p = torch.sigmoid(logits)
    expected = -(y_true * torch.log(p) + (1 - y_true) * torch.log(1 - p)).mean()
    with_logits = losses.binary_crossentropy(y_true, activations.sigmoid(logits))
    from_probs = losses.binary_crossentropy(y_true, p)  # plain tensor: no logits attached
    torch.testing.assert_close(with_logits, expected)
    torch.testing.assert_close(from_probs, expected)


def test_hinge_accepts_minus_one_one_and_zero_one_targets():
    y_pred = torch.tensor([[0.5], [-2.0], [0.3]])
    # targets 1, -1, -1: max(0, 1 - y f) = 0.5, 0, 1.3 -> mean 0.6
    expected = 0.6
    assert losses.hinge(torch.tensor([[1.0], [-1.0], [-1.0]]), y_pred).item() == \
        pytest.approx(expected)
    assert losses.hinge(torch.tensor([[1.0], [0.0], [0.0]]), y_pred).item() == \
        pytest.approx(expected)


def test_categorical_crossentropy_values():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    one_hot = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    expected = -(math.log(0.7) + math.log(0.1)) / 2
    assert losses.categorical_crossentropy(one_hot, probs).item() == pytest.approx(expected)
    assert losses.sparse_categorical_crossentropy(torch.tensor([0, 1]), probs).item() == \
        pytest.approx(expected)


def test_crossentropies_from_logits_equal_torch_cross_entropy():
    logits = torch.randn(5, 4)
    labels = torch.tensor([0, 3, 1, 1, 2])
    probs = activations.softmax(logits)
    expected = torch.nn.functional.cross_entropy(logits, labels)
    torch.testing.assert_close(losses.sparse_categorical_crossentropy(labels, probs), expected)
    one_hot = torch.nn.functional.one_hot(labels, 4).float()
    torch.testing.assert_close(losses.categorical_crossentropy(one_hot, probs), expected)
    # Same value without the logits shortcut (probabilities clipped, then logged).
    torch.testing.assert_close(
        losses.sparse_categorical_crossentropy(labels, probs.detach().clone()), expected)


def test_sparse_crossentropy_on_sequences():
    logits = torch.randn(2, 3, 4)  # (batch, steps, classes)
    labels = torch.tensor([[0, 1, 2], [3, 2, 1]])
    expected = torch.nn.functional.cross_entropy(logits.reshape(6, 4), labels.reshape(6))
    torch.testing.assert_close(
        losses.sparse_categorical_crossentropy(labels, activations.softmax(logits)), expected)


def test_get_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown loss: 'crossentropy'.*'hinge'"):
        losses.get("crossentropy")
