"""One hand-computed step per optimizer, through autograd (step) and from outside
(apply_gradients), against the update formula."""

from __future__ import annotations

import math

import pytest
import torch

from recommender.core import optimizers

W0 = [1.0, -2.0]
G = [0.5, 1.0]


def _step_with_autograd(optimizer, steps=1):
    w = torch.tensor(W0, requires_grad=True)
    for _ in range(steps):
        loss = (w * torch.tensor(G)).sum()  # dloss/dw = G
        loss.backward()
        optimizer.step([w])
        optimizer.zero_grad()
    return w.detach().tolist()


def _step_with_outside_gradients(optimizer, steps=1):
    w = torch.tensor(W0)
    for _ in range(steps):
        optimizer.apply_gradients(zip([torch.tensor(G)], [w], strict=True))
    return w.tolist()


def _expected(update):
    return [w - update(g) for w, g in zip(W0, G, strict=True)]


@pytest.mark.parametrize("run", [_step_with_autograd, _step_with_outside_gradients])
def test_sgd(run):
    assert run(optimizers.SGD(learning_rate=0.1)) == pytest.approx(_expected(lambda g: 0.1 * g))


@pytest.mark.parametrize("run", [_step_with_autograd, _step_with_outside_gradients])
def test_sgd_momentum_two_steps(run):
    # b1 = g, w1 = w0 - lr g; b2 = 0.9 g + g, w2 = w1 - lr b2 = w0 - 2.9 lr g
    result = run(optimizers.SGD(learning_rate=0.1, momentum=0.9), steps=2)
    assert result == pytest.approx(_expected(lambda g: 0.29 * g))


@pytest.mark.parametrize("run", [_step_with_autograd, _step_with_outside_gradients])
def test_sgd_nesterov(run):
    # b1 = g; the step uses g + m b1 = 1.9 g
    result = run(optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True))
    assert result == pytest.approx(_expected(lambda g: 0.19 * g))


@pytest.mark.parametrize("run", [_step_with_autograd, _step_with_outside_gradients])
def test_adagrad(run):
    # accumulator = 0.1 + g^2; w -= lr g / (sqrt(accumulator) + eps)
    result = run(optimizers.Adagrad(learning_rate=0.1))
    assert result == pytest.approx(_expected(lambda g: 0.1 * g / (math.sqrt(0.1 + g * g) + 1e-7)))


@pytest.mark.parametrize("run", [_step_with_autograd, _step_with_outside_gradients])
def test_rmsprop(run):
    # v = (1 - rho) g^2; w -= lr g / (sqrt(v) + eps)
    result = run(optimizers.RMSprop(learning_rate=0.01, rho=0.9))
    assert result == pytest.approx(_expected(lambda g: 0.01 * g / (math.sqrt(0.1 * g * g) + 1e-7)))


@pytest.mark.parametrize("run", [_step_with_autograd, _step_with_outside_gradients])
def test_adam_first_step(run):
    # m = 0.1 g, v = 0.001 g^2; bias-corrected m^ = g, v^ = g^2: w -= lr g / (|g| + eps)
    result = run(optimizers.Adam(learning_rate=0.001))
    assert result == pytest.approx(_expected(lambda g: 0.001 * g / (abs(g) + 1e-7)))


def test_adam_second_step_matches_formula():
    optimizer = optimizers.Adam(learning_rate=0.01, beta_1=0.9, beta_2=0.999)
    w = torch.tensor([1.0])
    grads = [torch.tensor([0.5]), torch.tensor([-1.0])]
    expected, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        optimizer.apply_gradients([(g, w)])
        m = 0.9 * m + 0.1 * g.item()
        v = 0.999 * v + 0.001 * g.item() ** 2
        m_hat, v_hat = m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)
        expected -= 0.01 * m_hat / (math.sqrt(v_hat) + 1e-7)
    assert w.item() == pytest.approx(expected, rel=1e-6)
    assert optimizer.iterations == 2


def test_learning_rate_change_keeps_state():
    optimizer = optimizers.SGD(learning_rate=0.1, momentum=0.5)
    w = torch.tensor([0.0])
    optimizer.apply_gradients([(torch.tensor([1.0]), w)])  # b = 1, w = -0.1
    optimizer.learning_rate = 1.0
    optimizer.apply_gradients([(torch.tensor([1.0]), w)])  # b = 1.5, w = -0.1 - 1.5
    assert w.item() == pytest.approx(-1.6)


def test_get_by_name_and_instance():
    assert isinstance(optimizers.get("adam"), optimizers.Adam)
    assert isinstance(optimizers.get("SGD"), optimizers.SGD)
    sgd = optimizers.SGD()
    assert optimizers.get(sgd) is sgd
    assert optimizers.get("rmsprop").learning_rate == 0.001
    restored = optimizers.get(optimizers.serialize(optimizers.SGD(0.3, momentum=0.2)))
    assert (restored.learning_rate, restored.momentum) == (0.3, 0.2)


def test_errors_name_the_argument_and_value():
    with pytest.raises(ValueError, match="Unknown optimizer: 'adamw'.*'adam'.*'sgd'"):
        optimizers.get("adamw")
    with pytest.raises(ValueError, match="learning_rate=-0.1"):
        optimizers.SGD(learning_rate=-0.1)
    with pytest.raises(ValueError, match="momentum=1.5"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="Gradient 0 has shape"):
        optimizers.SGD().apply_gradients([(torch.zeros(3), torch.zeros(2))])


def test_sgd_uses_torchs_fused_kernel_with_the_same_steps():
    """Momentum SGD builds torch's fused kernel on CPU; two hand-computed steps still hold:
    b1 = g, w1 = w0 - lr*b1; b2 = m*b1 + g, w2 = w1 - lr*b2."""
    w = torch.tensor([1.0, -2.0])
    opt = optimizers.SGD(learning_rate=0.1, momentum=0.5)
    g = torch.tensor([0.5, 1.0])
    opt.apply_gradients([(g, w)])
    assert opt._torch_opt.defaults["fused"] is True
    torch.testing.assert_close(w, torch.tensor([0.95, -2.1]))
    opt.apply_gradients([(g, w)])
    torch.testing.assert_close(w, torch.tensor([0.95 - 0.1 * 0.75, -2.1 - 0.1 * 1.5]))
