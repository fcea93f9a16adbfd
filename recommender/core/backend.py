"""Small helpers shared by the core: device resolution, tensor conversion, naming."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import numpy as np
import torch

# Keras's default fuzz factor, used to clip probabilities before taking logs.
EPSILON = 1e-7

_name_counters: dict[str, int] = defaultdict(int)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or None) picks CUDA when torch sees a GPU, else the CPU."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Received: device={device!r}"
        ) from exc


def snake_case(name: str) -> str:
    """``"MaxPooling2D"`` -> ``"max_pooling2d"`` (Keras's automatic layer names)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(prefix: str) -> str:
    """``dense``, ``dense_1``, ``dense_2``... as Keras names its layers."""
    count = _name_counters[prefix]
    _name_counters[prefix] += 1
    return prefix if count == 0 else f"{prefix}_{count}"


def to_tensor(data: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Array-like -> tensor; floating data becomes float32 unless ``dtype`` says otherwise."""
    if isinstance(data, torch.Tensor):
        tensor = data
    else:
        tensor = torch.as_tensor(np.asarray(data))
    if dtype is not None:
        return tensor.to(dtype)
    if tensor.is_floating_point() and tensor.dtype != torch.float32:
        return tensor.float()
    if tensor.dtype == torch.bool:
        return tensor.float()
    return tensor


def normalize_tuple(value: Any, n: int, name: str) -> tuple[int, ...]:
    """``3`` -> ``(3, 3)``; checks every entry is a positive int (Keras's conv arguments)."""
    if isinstance(value, int):
        values = (value,) * n
    else:
        try:
            values = tuple(int(v) for v in value)
        except TypeError as exc:
            raise ValueError(
                f"{name} must be an int or a tuple of {n} ints. Received: {name}={value!r}"
            ) from exc
        if len(values) != n or any(int(v) != v for v in value):
            raise ValueError(
                f"{name} must be an int or a tuple of {n} ints. Received: {name}={value!r}"
            )
    if any(v <= 0 for v in values):
        raise ValueError(f"{name} must contain positive ints. Received: {name}={value!r}")
    return values
