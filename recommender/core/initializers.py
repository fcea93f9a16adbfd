"""Weight initializers with Keras's names and fan conventions.

Every initializer is called with a shape in *Keras layout* (Dense ``(in, out)``, Conv2D
``(kh, kw, in, out)``, LSTM ``(in, 4 * units)``) so that fan-in/fan-out match Keras; layers that
store another layout internally transpose afterwards. Randomness comes from torch's global
generator, so ``torch.manual_seed`` makes a model reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from . import registry


def compute_fans(shape: Sequence[int]) -> tuple[int, int]:
    """Keras's rule: the last two axes are (in, out), the others the receptive field."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


class Initializer:
    """Base class: ``init(shape, dtype)`` returns a new tensor."""

    def __call__(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}


class Zeros(Initializer):
    def __call__(self, shape, dtype=torch.float32):
        return torch.zeros(tuple(shape), dtype=dtype)


class Ones(Initializer):
    def __call__(self, shape, dtype=torch.float32):
        return torch.ones(tuple(shape), dtype=dtype)


class RandomUniform(Initializer):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05) -> None:
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype=torch.float32):
        return torch.empty(tuple(shape), dtype=dtype).uniform_(self.minval, self.maxval)


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05) -> None:
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype=torch.float32):
        return torch.empty(tuple(shape), dtype=dtype).normal_(self.mean, self.stddev)


class VarianceScaling(Initializer):
    """Keras's family behind glorot_*/he_*: variance ``scale / fan``."""

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal") -> None:
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape, dtype=torch.float32):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        tensor = torch.empty(tuple(shape), dtype=dtype)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return tensor.uniform_(-limit, limit)
        # Truncated at two standard deviations; 0.8796... corrects the truncation's shrinkage.
        stddev = math.sqrt(variance) / 0.87962566103423978
        return torch.nn.init.trunc_normal_(tensor, 0.0, stddev, -2 * stddev, 2 * stddev)


class Orthogonal(Initializer):
    """Orthogonal matrix over ``(prod(shape[:-1]), shape[-1])`` (recurrent kernels)."""

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = float(gain)

    def __call__(self, shape, dtype=torch.float32):
        shape = tuple(shape)
        flat = torch.empty(math.prod(shape[:-1]), shape[-1], dtype=dtype)
        return torch.nn.init.orthogonal_(flat, gain=self.gain).reshape(shape)


def glorot_uniform() -> Initializer:
    return VarianceScaling(1.0, "fan_avg", "uniform")


def glorot_normal() -> Initializer:
    return VarianceScaling(1.0, "fan_avg", "truncated_normal")


def he_uniform() -> Initializer:
    return VarianceScaling(2.0, "fan_in", "uniform")


def he_normal() -> Initializer:
    return VarianceScaling(2.0, "fan_in", "truncated_normal")


def lecun_normal() -> Initializer:
    return VarianceScaling(1.0, "fan_in", "truncated_normal")


_REGISTRY = {
    "zeros": Zeros,
    "ones": Ones,
    "uniform": RandomUniform,
    "random_uniform": RandomUniform,
    "normal": RandomNormal,
    "random_normal": RandomNormal,
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "lecun_normal": lecun_normal,
    "orthogonal": Orthogonal,
}


def get(identifier: Any) -> Any:
    """Resolve a name (``"glorot_uniform"``) or a callable ``(shape, dtype) -> tensor``.

    Names are kept as names by layers (that is what their config stores); this returns the
    initializer object to call.
    """
    return registry.resolve(identifier, _REGISTRY, "initializer", instantiate=True)
