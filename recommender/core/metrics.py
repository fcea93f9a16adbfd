"""Metrics for ``Model.compile(metrics=[...])``.

A metric here returns the *sum* over the batch's samples (a 0-d tensor, left on the device);
``Model`` adds those up over an epoch and divides by the sample count once at the end, so the
epoch value is exact whatever the batch sizes and costs no host sync per batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import registry

MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _per_sample(values: torch.Tensor) -> torch.Tensor:
    """Sum over samples of the mean over every axis but the first."""
    if values.dim() > 1:
        values = values.reshape(values.shape[0], -1).float().mean(dim=1)
    return values.float().sum()


def binary_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Fraction of outputs on the right side of 0.5."""
    if y_true.dim() == y_pred.dim() - 1:
        y_true = y_true.unsqueeze(-1)
    return _per_sample((y_pred > 0.5) == (y_true > 0.5))


def sign_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Binary accuracy for hinge-style outputs: the sign decides, targets {-1,1} or {0,1}."""
    if y_true.dim() == y_pred.dim() - 1:
        y_true = y_true.unsqueeze(-1)
    return _per_sample((y_pred > 0) == (y_true > 0))


def categorical_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    return _per_sample(y_pred.argmax(dim=-1) == y_true.argmax(dim=-1))


def sparse_categorical_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    if y_true.dim() == y_pred.dim():
        y_true = y_true.squeeze(-1)
    return _per_sample(y_pred.argmax(dim=-1) == y_true.long())


def mean_squared_error(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    if y_true.dim() == y_pred.dim() - 1:
        y_true = y_true.unsqueeze(-1)
    return _per_sample((y_pred - y_true) ** 2)


def mean_absolute_error(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    if y_true.dim() == y_pred.dim() - 1:
        y_true = y_true.unsqueeze(-1)
    return _per_sample((y_pred - y_true).abs())


_REGISTRY: dict[str, MetricFn] = {
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "mean_squared_error": mean_squared_error,
    "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mae": mean_absolute_error,
}

# Which accuracy "accuracy" means for a given loss (Keras decides the same way).
_ACCURACY_FOR_LOSS = {
    "binary_crossentropy": binary_accuracy,
    "hinge": sign_accuracy,
    "categorical_crossentropy": categorical_accuracy,
    "sparse_categorical_crossentropy": sparse_categorical_accuracy,
}


def get(name: str, loss_name: str | None = None,
        output_shape: tuple | None = None) -> MetricFn:
    """Resolve a metric name; ``"accuracy"``/``"acc"`` picks the variant the loss implies,
    else binary for a one-unit output and categorical otherwise."""
    if not isinstance(name, str):
        raise ValueError(f"metrics must be names. Received: {name!r}")
    key = name.lower()
    if key in ("accuracy", "acc"):
        if loss_name in _ACCURACY_FOR_LOSS:
            return _ACCURACY_FOR_LOSS[loss_name]
        if output_shape is not None and output_shape[-1] == 1:
            return binary_accuracy
        return categorical_accuracy
    return registry.lookup(name, _REGISTRY, "metric", valid_names=[*_REGISTRY, "accuracy"])
