"""Conv2D and MaxPooling2D on channels-last images ``(batch, height, width, channels)``.

torch's kernels want ``(batch, channels, height, width)``; ``permute`` gives that as a *view*
of the channels-last data (torch's channels_last memory format), so no copy is made on the
way in or out. Padding follows Keras: ``"valid"`` none, ``"same"`` an output of
``ceil(size / stride)`` with any odd pixel of padding at the bottom/right.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..backend import normalize_tuple
from .base import InputSpec, Layer, Shape
from .core import KernelLayer, check_positive_int


def _check_padding(layer: str, padding: Any) -> str:
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(
            f"Layer {layer!r}: padding must be 'valid' or 'same'. Received: padding={padding!r}"
        )
    return padding.lower()


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of one spatial axis for Keras's ``"same"``."""
    effective = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class Conv2D(KernelLayer):
    """2-D cross-correlation (no kernel flip), as Keras's Conv2D.

    ``get_weights()`` gives the kernel as ``(kh, kw, in_channels, filters)``; it is stored as
    torch's ``(filters, in_channels, kh, kw)``.
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", dilation_rate: Any = (1, 1), activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None,
                 bias_regularizer: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = check_positive_int(self.name, "filters", filters)
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size")
        self.strides = normalize_tuple(strides, 2, "strides")
        self.dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate")
        self.padding = _check_padding(self.name, padding)
        self._init_kernel_options(activation, use_bias, kernel_initializer, bias_initializer,
                                  kernel_regularizer, bias_regularizer)

    def build(self, input_shape: Shape) -> None:
        channels = self._known_last_axis(input_shape, ("batch", "height", "width", "channels"))
        kh, kw = self.kernel_size
        self.add_weight("kernel", (kh, kw, channels, self.filters), self.kernel_initializer,
                        self.kernel_regularizer)
        with torch.no_grad():  # Keras (kh, kw, in, out) -> torch (out, in, kh, kw)
            self.kernel.data = self.kernel.data.permute(3, 2, 0, 1).contiguous()
        self._add_bias(self.filters)
        self.input_spec = InputSpec(ndim=4, axes={-1: channels})

    def _to_keras(self, name: str, value: torch.Tensor) -> torch.Tensor:
        return value.permute(2, 3, 1, 0) if name == "kernel" else value

    def _from_keras(self, name: str, value: torch.Tensor) -> torch.Tensor:
        return value.permute(3, 2, 0, 1).contiguous() if name == "kernel" else value

    def _padding_for(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        if self.padding == "valid":
            return (0, 0), (0, 0)
        return (same_padding(height, self.kernel_size[0], self.strides[0], self.dilation_rate[0]),
                same_padding(width, self.kernel_size[1], self.strides[1], self.dilation_rate[1]))

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        x = inputs.permute(0, 3, 1, 2)  # (batch, h, w, c) -> (batch, c, h, w), a view
        (top, bottom), (left, right) = self._padding_for(x.shape[2], x.shape[3])
        if top == bottom and left == right:
            padding = (top, left)  # symmetric: let the convolution pad
        else:
            x = F.pad(x, (left, right, top, bottom))
            padding = (0, 0)
        out = F.conv2d(x, self.kernel, self.bias, self.strides, padding, self.dilation_rate)
        return self.activation(out.permute(0, 2, 3, 1))  # -> (batch, h', w', filters)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "dilation_rate": list(self.dilation_rate),
            **self._kernel_options_config(),
        }


class MaxPooling2D(Layer):
    """Max over ``pool_size`` windows moved by ``strides`` (default: ``pool_size``)."""

    def __init__(self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_size = normalize_tuple(pool_size, 2, "pool_size")
        self.strides = self.pool_size if strides is None else normalize_tuple(strides, 2,
                                                                              "strides")
        self.padding = _check_padding(self.name, padding)

    def build(self, input_shape: Shape) -> None:
        self.input_spec = InputSpec(ndim=4)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        x = inputs.permute(0, 3, 1, 2)  # (batch, h, w, c) -> (batch, c, h, w), a view
        if self.padding == "same":
            top, bottom = same_padding(x.shape[2], self.pool_size[0], self.strides[0])
            left, right = same_padding(x.shape[3], self.pool_size[1], self.strides[1])
            if top or bottom or left or right:
                # Padded cells must never win the max.
                x = F.pad(x, (left, right, top, bottom), value=-math.inf)
        out = F.max_pool2d(x, self.pool_size, self.strides)
        return out.permute(0, 2, 3, 1)  # -> (batch, h', w', c)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding}
