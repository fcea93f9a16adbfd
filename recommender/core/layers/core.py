"""Core layers: Dense, Activation, Dropout, Flatten, Embedding."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .. import activations, regularizers
from .base import InputSpec, Layer, Shape


def check_positive_int(layer: str, name: str, value: Any) -> int:
    """Keras's message for unit counts and sizes: name the argument and the value."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"Layer {layer!r}: received an invalid value for `{name}`, expected a positive "
            f"integer. Received: {name}={value!r}"
        )
    return value


def _serialize_init(identifier: Any) -> Any:
    if isinstance(identifier, str):
        return identifier
    raise ValueError(f"Only initializers given by name can be saved. Received: {identifier!r}")


class KernelLayer(Layer):
    """What Dense, Conv2D, SimpleRNN and LSTM share: an activation, a kernel and an optional
    bias, with their initializers and regularizers."""

    # Created by ``build`` (torch registers them as parameters; declared for the type checker).
    kernel: torch.nn.Parameter
    bias: torch.nn.Parameter | None  # None without use_bias

    def _init_kernel_options(self, activation: Any, use_bias: bool, kernel_initializer: Any,
                             bias_initializer: Any, kernel_regularizer: Any,
                             bias_regularizer: Any) -> None:
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer  # kept as given: the config stores names
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def _known_last_axis(self, input_shape: Shape, axes: tuple[str, ...]) -> int:
        """The size of the last axis of an input whose axes are ``axes``, which must be known."""
        if len(input_shape) != len(axes) or input_shape[-1] is None:
            raise ValueError(
                f"Input 0 of layer {self.name!r} is incompatible with the layer: expected "
                f"({', '.join(axes)}) with known {axes[-1]}. Received: input_shape={input_shape}"
            )
        return input_shape[-1]

    def _add_bias(self, size: int) -> None:
        """``self.bias`` of shape ``(size,)``, or None without ``use_bias``."""
        if self.use_bias:
            self.bias = self.add_weight("bias", (size,), self.bias_initializer,
                                        self.bias_regularizer)
        else:
            self.bias = None

    def _kernel_options_config(self) -> dict[str, Any]:
        return {
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": _serialize_init(self.kernel_initializer),
            "bias_initializer": _serialize_init(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
        }


class Dense(KernelLayer):
    """``output = activation(inputs @ kernel + bias)`` on the last axis; kernel ``(in, units)``."""

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = check_positive_int(self.name, "units", units)
        self._activation_id = activation
        self._init_kernel_options(activation, use_bias, kernel_initializer, bias_initializer,
                                  kernel_regularizer, bias_regularizer)

    def build(self, input_shape: Shape) -> None:
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ValueError(
                f"Layer {self.name!r}: the last axis of the input must be known. "
                f"Received: input_shape={input_shape}"
            )
        self.kernel = self.add_weight("kernel", (in_dim, self.units), self.kernel_initializer,
                                      self.kernel_regularizer)
        self._add_bias(self.units)
        self.input_spec = InputSpec(min_ndim=2, axes={-1: in_dim})

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if inputs.dim() == 2 and self.bias is not None:
            outputs = torch.addmm(self.bias, inputs, self.kernel)  # (batch, units)
        else:
            outputs = torch.matmul(inputs, self.kernel)  # (..., units)
            if self.bias is not None:
                outputs = outputs + self.bias
        return self.activation(outputs)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            **self._kernel_options_config(),
        }


class Activation(Layer):
    """Applies an activation function."""

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return self.activation(inputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs while training, scaling the rest by
    ``1 / (1 - rate)``; identity at inference."""

    def __init__(self, rate: float, noise_shape: Any = None, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"rate must be in [0, 1). Received: rate={rate!r}")
        if noise_shape is not None:
            raise ValueError(f"noise_shape is not supported. Received: noise_shape={noise_shape!r}")
        self.rate = float(rate)
        self.seed = seed
        self._generator: torch.Generator | None = None

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if not training or self.rate == 0.0:
            return inputs
        if self.seed is None:
            return F.dropout(inputs, self.rate, training=True)
        if self._generator is None or self._generator.device != inputs.device:
            self._generator = torch.Generator(device=inputs.device).manual_seed(self.seed)
        keep = torch.empty_like(inputs).bernoulli_(1.0 - self.rate, generator=self._generator)
        return inputs * keep / (1.0 - self.rate)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class Flatten(Layer):
    """``(batch, d1, d2, ...)`` -> ``(batch, d1 * d2 * ...)``, in channels-last order."""

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return inputs.reshape(inputs.shape[0], -1)


class Embedding(Layer):
    """Integer indices ``(batch, ...)`` -> vectors ``(batch, ..., output_dim)``."""

    accepts_integer_inputs = True

    def __init__(self, input_dim: int, output_dim: int,
                 embeddings_initializer: Any = "uniform", embeddings_regularizer: Any = None,
                 input_length: int | None = None, **kwargs: Any) -> None:
        if input_length is not None and "input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length,)  # Keras 2's spelling
        super().__init__(**kwargs)
        self.input_dim = check_positive_int(self.name, "input_dim", input_dim)
        self.output_dim = check_positive_int(self.name, "output_dim", output_dim)
        self.embeddings_initializer = embeddings_initializer
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)

    def build(self, input_shape: Shape) -> None:
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer,
                                          self.embeddings_regularizer)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if inputs.dtype != torch.long:
            inputs = inputs.long()
        return F.embedding(inputs, self.embeddings)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": _serialize_init(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
        }
