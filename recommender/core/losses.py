"""Loss functions with Keras's names: ``loss(y_true, y_pred)`` -> scalar mean over the batch.

When ``y_pred`` came out of ``activations.softmax``/``sigmoid`` it carries its logits, and the
cross-entropies use them (``log_softmax`` / ``binary_cross_entropy_with_logits``) as Keras does:
stable, and the same arithmetic a hand-written torch loop does on logits. Otherwise the
probabilities are clipped to ``[EPSILON, 1 - EPSILON]`` before the log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from . import registry
from .activations import LOGITS_ATTR
from .backend import EPSILON


def _match_target(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Give ``(batch,)`` targets the ``(batch, 1)`` shape of a one-unit output."""
    if y_true.dim() == y_pred.dim() - 1 and y_pred.shape[-1] == 1:
        y_true = y_true.unsqueeze(-1)
    if y_true.dtype != y_pred.dtype:
        y_true = y_true.to(y_pred.dtype)
    return y_true


def mean_squared_error(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """mean((y_true - y_pred)**2); its gradient is -2 (y_true - y_pred) / n."""
    return F.mse_loss(y_pred, _match_target(y_true, y_pred))


def mean_absolute_error(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(y_pred, _match_target(y_true, y_pred))


def binary_crossentropy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    y_true = _match_target(y_true, y_pred)
    logits = getattr(y_pred, LOGITS_ATTR, None)
    if logits is not None:
        return F.binary_cross_entropy_with_logits(logits, y_true)
    return F.binary_cross_entropy(y_pred.clamp(EPSILON, 1.0 - EPSILON), y_true)


def hinge(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """mean(max(1 - y_true * y_pred, 0)); targets in {-1, 1}, or {0, 1} (converted)."""
    y_true = _match_target(y_true, y_pred)
    if not bool((y_true < 0).any()):
        y_true = 2.0 * y_true - 1.0  # {0, 1} -> {-1, 1}, as Keras does
    return torch.clamp(1.0 - y_true * y_pred, min=0.0).mean()


def categorical_crossentropy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """-sum(y_true * log(y_pred)) over the last axis, averaged; one-hot (or soft) targets."""
    y_true = y_true.to(y_pred.dtype)
    logits = getattr(y_pred, LOGITS_ATTR, None)
    if logits is not None:
        log_probs = torch.log_softmax(logits, dim=-1)
    else:
        log_probs = torch.log(y_pred.clamp(EPSILON, 1.0 - EPSILON))
    return -(y_true * log_probs).sum(dim=-1).mean()


def sparse_categorical_crossentropy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with integer class targets: ``y_true`` has ``y_pred``'s shape minus its
    last axis (a trailing axis of size 1 is accepted too)."""
    num_classes = y_pred.shape[-1]
    if y_true.dim() == y_pred.dim():
        y_true = y_true.squeeze(-1)
    targets = y_true.reshape(-1).long()  # (samples * steps,)
    logits = getattr(y_pred, LOGITS_ATTR, None)
    if logits is not None:
        return F.cross_entropy(logits.reshape(-1, num_classes), targets)
    log_probs = torch.log(y_pred.clamp(EPSILON, 1.0 - EPSILON)).reshape(-1, num_classes)
    return F.nll_loss(log_probs, targets)


# Keras's short aliases.
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error

_REGISTRY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mean_squared_error": mean_squared_error,
    "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mae": mean_absolute_error,
    "binary_crossentropy": binary_crossentropy,
    "hinge": hinge,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}


def get(identifier: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Resolve a name (``"hinge"``) or a callable ``(y_true, y_pred) -> scalar``."""
    return registry.resolve(identifier, _REGISTRY, "loss")


def serialize(loss: Callable[..., torch.Tensor]) -> str:
    name = registry.name_of(loss, _REGISTRY)
    if name is not None:
        return name
    raise ValueError(f"Cannot serialize loss {loss!r}: only built-in losses can be saved.")
