"""Weight regularizers: penalties added to a loss, or their gradients added to outside gradients.

A regularizer is a callable on any weight tensor: a layer's kernel or the RBM's weight matrix.

* ``reg(w)`` returns the scalar penalty, differentiable by autograd (what ``Model.fit`` adds
  to the loss, as Keras does).
* ``reg.gradient(w)`` returns d penalty / d w in closed form, for code that computes its own
  gradients (the RBM's contrastive-divergence statistics) and hands them to an optimizer.
  ``tests/core/test_regularizers.py`` checks it against autograd.

Keras's conventions: ``l1(x) = l1 * sum(|w|)``, ``l2(x) = l2 * sum(w**2)`` (so the l2 gradient is
``2 * l2 * w``), default factors 0.01.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from . import registry


class Regularizer:
    """Base class: subclasses implement ``__call__`` and ``gradient``."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(())

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)

    def add_gradient_(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``grad += d penalty / d x`` in place; returns ``grad``. For code that adds the
        penalty's gradient to its own gradients: no temporary the size of ``x``."""
        return grad.add_(self.gradient(x))

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        return cls(**config)


def _check_factor(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"{name} must be a finite, non-negative number. Received: {name}={value!r}"
        )
    return value


class L1L2(Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w**2)``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = _check_factor("l1", l1)
        self.l2 = _check_factor("l2", l2)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        penalty = x.new_zeros(())
        if self.l1:
            penalty = penalty + self.l1 * x.abs().sum()
        if self.l2:
            penalty = penalty + self.l2 * x.square().sum()
        return penalty

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        # No zero tensor to start from: at the RBM's scale every pass over W counts.
        if self.l1 and self.l2:
            return torch.sign(x).mul_(self.l1).add_(x, alpha=2.0 * self.l2)
        if self.l2:
            return x * (2.0 * self.l2)
        if self.l1:
            return torch.sign(x).mul_(self.l1)
        return torch.zeros_like(x)

    def add_gradient_(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.l2:
            grad.add_(x, alpha=2.0 * self.l2)  # one fused pass over x
        if self.l1:
            grad.add_(torch.sign(x), alpha=self.l1)
        return grad

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(l1={self.l1}, l2={self.l2})"


class L1(L1L2):
    def __init__(self, l1: float = 0.01) -> None:
        super().__init__(l1=l1, l2=0.0)

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2: float = 0.01) -> None:
        super().__init__(l1=0.0, l2=l2)

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


# Keras's lower-case aliases: regularizers.l2(0.001)
l1 = L1
l2 = L2
l1_l2 = L1L2

_REGISTRY: dict[str, type[Regularizer]] = {"l1": L1, "l2": L2, "l1_l2": L1L2}


def get(identifier: Any) -> Regularizer | None:
    """Resolve ``None``, a name (``"l2"``), a config dict or an instance to a regularizer."""
    if identifier is None:
        return None
    return registry.resolve(identifier, _REGISTRY, "regularizer", instance_of=Regularizer,
                            instantiate=True, from_config=True)


def serialize(regularizer: Regularizer | None) -> dict[str, Any] | None:
    if regularizer is None:
        return None
    name = registry.name_of(type(regularizer), _REGISTRY)
    if name is None:
        raise ValueError(f"Cannot serialize regularizer {regularizer!r}")
    return {"class_name": name, "config": regularizer.get_config()}
