from __future__ import annotations

import pytest
import torch

from recommender.core import activations

X = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0])


def test_values():
    assert torch.equal(activations.linear(X), X)
    assert activations.threshold(X).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert activations.relu(X).tolist() == [0.0, 0.0, 0.0, 0.5, 2.0]
    assert activations.sigmoid(torch.tensor([0.0])).item() == 0.5
    assert activations.tanh(torch.tensor([0.0])).item() == 0.0
    torch.testing.assert_close(activations.sigmoid(X), 1 / (1 + torch.exp(-X)))
    torch.testing.assert_close(activations.tanh(X), (torch.exp(2 * X) - 1) / (torch.exp(2 * X) + 1))


def test_softmax_over_last_axis():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    probs = activations.softmax(logits)
    expected = torch.exp(logits) / torch.exp(logits).sum(dim=-1, keepdim=True)
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(probs[1], torch.full((3,), 1 / 3))


def test_softmax_and_sigmoid_remember_their_logits():
    logits = torch.randn(4, 3)
    assert getattr(activations.softmax(logits), activations.LOGITS_ATTR) is logits
    assert getattr(activations.sigmoid(logits), activations.LOGITS_ATTR) is logits


def test_get_resolves_names_and_callables():
    assert activations.get("relu") is activations.relu
    assert activations.get("ReLU") is activations.relu
    assert activations.get(None) is activations.linear
    assert activations.get(torch.sin) is torch.sin


def test_get_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="Unknown activation: 'swishy'.*'relu'.*'threshold'"):
        activations.get("swishy")
