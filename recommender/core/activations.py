"""Activation functions with Keras's names, resolved through ``get()``.

``softmax`` and ``sigmoid`` remember their input (the logits) on the output tensor, as Keras
does, so that the cross-entropy losses can work from the logits: that is numerically stable and
saves the log of the probabilities (see ``losses.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import registry

# Attribute name under which softmax/sigmoid outputs keep their logits.
LOGITS_ATTR = "_keras_logits"


def linear(x: torch.Tensor) -> torch.Tensor:
    """Identity."""
    return x


def threshold(x: torch.Tensor) -> torch.Tensor:
    """Heaviside step: 1 where x >= 0, else 0 (the perceptron's activation; no gradient)."""
    return (x >= 0).to(x.dtype)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    out = torch.sigmoid(x)
    setattr(out, LOGITS_ATTR, x)
    return out


def tanh(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x)


def relu(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x)


def softmax(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Softmax over ``axis`` (the last one by default, as in Keras)."""
    out = torch.softmax(x, dim=axis)
    if axis in (-1, x.dim() - 1):
        setattr(out, LOGITS_ATTR, x)
    return out


_REGISTRY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": linear,
    "threshold": threshold,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "softmax": softmax,
}


def get(identifier: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Resolve ``None`` (linear), a name or a callable to an activation function."""
    if identifier is None:
        return linear
    return registry.resolve(identifier, _REGISTRY, "activation")


def serialize(activation: Callable[[torch.Tensor], torch.Tensor]) -> str:
    """The registry name of an activation (what a saved config stores)."""
    name = registry.name_of(activation, _REGISTRY)
    if name is not None:
        return name
    raise ValueError(
        f"Cannot serialize activation {activation!r}: only the built-in ones "
        f"{sorted(_REGISTRY)} can be saved."
    )
