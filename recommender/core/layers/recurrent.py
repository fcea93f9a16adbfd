"""Recurrent layers over ``(batch, timesteps, features)``: SimpleRNN and LSTM.

Weights use Keras's layouts: ``kernel (features, k * units)``, ``recurrent_kernel
(units, k * units)``, ``bias (k * units,)``, with the LSTM's gates in Keras's (and torch's)
order input, forget, cell, output. With the default activations the LSTM runs torch's fused
kernel (``torch.lstm``); other activations take the step-by-step loop, which is also the
reference the tests compare the fused path against.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import activations, regularizers
from .base import InputSpec, Shape
from .core import KernelLayer, _serialize_init, check_positive_int


class _Recurrent(KernelLayer):
    """Shared configuration and weights of SimpleRNN and LSTM."""

    gates = 1  # blocks of ``units`` columns in the kernels
    recurrent_kernel: torch.nn.Parameter  # (units, gates * units), created by build

    def __init__(self, units: int, activation: Any = "tanh", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, return_sequences: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = check_positive_int(self.name, "units", units)
        self._init_kernel_options(activation, use_bias, kernel_initializer, bias_initializer,
                                  kernel_regularizer, bias_regularizer)
        self.recurrent_initializer = recurrent_initializer
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.return_sequences = bool(return_sequences)

    def build(self, input_shape: Shape) -> None:
        features = self._known_last_axis(input_shape, ("batch", "timesteps", "features"))
        width = self.gates * self.units
        self.kernel = self.add_weight("kernel", (features, width), self.kernel_initializer,
                                      self.kernel_regularizer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, width),
                                                self.recurrent_initializer,
                                                self.recurrent_regularizer)
        self._add_bias(width)
        self.input_spec = InputSpec(ndim=3, axes={-1: features})

    def _input_projection(self, inputs: torch.Tensor) -> torch.Tensor:
        """``inputs @ kernel + bias`` for every step at once: (batch, steps, gates * units)."""
        projected = torch.matmul(inputs, self.kernel)
        return projected + self.bias if self.bias is not None else projected

    def _finish(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        if self.return_sequences:
            return torch.stack(outputs, dim=1)  # (batch, steps, units)
        return outputs[-1]  # (batch, units)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            **self._kernel_options_config(),
            "recurrent_initializer": _serialize_init(self.recurrent_initializer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "return_sequences": self.return_sequences,
        }


class SimpleRNN(_Recurrent):
    """``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``, ``h_0 = 0``."""

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        projected = self._input_projection(inputs)  # (batch, steps, units)
        state = projected.new_zeros(inputs.shape[0], self.units)
        outputs = []
        for step in range(inputs.shape[1]):
            state = self.activation(projected[:, step] + state @ self.recurrent_kernel)
            outputs.append(state)
        return self._finish(outputs)


class LSTM(_Recurrent):
    """Long short-term memory, Keras's equations::

        i, f, c~, o = split(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)
        c_t = rec_act(f) * c_{t-1} + rec_act(i) * act(c~)
        h_t = rec_act(o) * act(c_t)

    with ``rec_act = sigmoid`` and ``act = tanh`` by default. ``unit_forget_bias`` starts the
    forget gate's bias at 1, as in Keras.
    """

    gates = 4
    _zero_bias: torch.Tensor  # (4 * units,) buffer registered by build when use_bias

    def __init__(self, units: int, activation: Any = "tanh",
                 recurrent_activation: Any = "sigmoid", unit_forget_bias: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    def build(self, input_shape: Shape) -> None:
        super().build(input_shape)
        if self.bias is not None:
            if self.unit_forget_bias:
                with torch.no_grad():
                    self.bias[self.units:2 * self.units] = 1.0
            # torch.lstm wants a second (recurrent) bias; it stays zero and is not a weight.
            self.register_buffer("_zero_bias", torch.zeros(4 * self.units), persistent=False)

    @property
    def uses_fused_kernel(self) -> bool:
        return (self.activation is activations.tanh
                and self.recurrent_activation is activations.sigmoid)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if self.uses_fused_kernel:
            return self._call_fused(inputs)
        return self._call_loop(inputs)

    def _call_fused(self, inputs: torch.Tensor) -> torch.Tensor:
        batch = inputs.shape[0]
        zeros = inputs.new_zeros(1, batch, self.units)  # (layers, batch, units)
        # torch's layout is the transpose of Keras's: weight_ih (4 * units, features).
        params = [self.kernel.t(), self.recurrent_kernel.t()]
        if self.bias is not None:
            params += [self.bias, self._zero_bias]
        outputs, _, _ = torch.lstm(inputs, (zeros, zeros), params, self.bias is not None,
                                   1, 0.0, False, False, True)
        return outputs if self.return_sequences else outputs[:, -1]

    def _call_loop(self, inputs: torch.Tensor) -> torch.Tensor:
        projected = self._input_projection(inputs)  # (batch, steps, 4 * units)
        h = projected.new_zeros(inputs.shape[0], self.units)
        c = torch.zeros_like(h)
        outputs = []
        for step in range(inputs.shape[1]):
            z = projected[:, step] + h @ self.recurrent_kernel
            i, f, candidate, o = z.chunk(4, dim=-1)  # each (batch, units)
            c = (self.recurrent_activation(f) * c
                 + self.recurrent_activation(i) * self.activation(candidate))
            h = self.recurrent_activation(o) * self.activation(c)
            outputs.append(h)
        return self._finish(outputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "unit_forget_bias": self.unit_forget_bias}
