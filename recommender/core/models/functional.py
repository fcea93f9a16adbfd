"""The functional ``Model``: a chain of layers recovered from symbolic tensors.

``Model(inputs=x_in, outputs=x_out)`` walks the graph back from ``outputs`` to ``inputs``.
Every layer here takes one input, so a model is a chain of layers from its input to its
output. Training (``compile``/``fit``/``evaluate``/``predict``) comes from ``Trainer`` in
``training.py``; the file format from ``saving.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .. import layers as layers_module
from ..backend import resolve_device
from ..layers.base import InputLayer, Layer, LayerList, Shape, SymbolicTensor
from . import saving
from .training import Trainer


@saving.register_model_class
class Model(Trainer):
    """A chain of layers with Keras's training API.

    ``Model(inputs=x_in, outputs=x_out)`` (or Keras 1's ``Model(input=..., output=...)``)
    builds it from symbolic tensors; ``Sequential`` from a list of layers.

    Args:
        device: ``"auto"`` trains and predicts on CUDA when torch sees a GPU, else on the CPU;
            or any torch device string.
    """

    def __init__(self, inputs: Any = None, outputs: Any = None, name: str | None = None,
                 device: str | torch.device = "auto", *, input: Any = None,  # noqa: A002
                 output: Any = None, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        if inputs is not None and input is not None:
            raise ValueError("Pass either inputs= or input= (Keras 1's spelling), not both.")
        if outputs is not None and output is not None:
            raise ValueError("Pass either outputs= or output= (Keras 1's spelling), not both.")
        inputs = inputs if inputs is not None else input
        outputs = outputs if outputs is not None else output
        self.device = resolve_device(device)
        self._chain = LayerList()  # the layers input -> output, InputLayer excluded
        self._input_layer: InputLayer | None = None
        self._on_device = False
        if inputs is not None or outputs is not None:
            self._init_graph(inputs, outputs)
        elif type(self) is Model:
            raise ValueError(
                "Model needs inputs= and outputs= (symbolic tensors from layers.Input). "
                "Received: inputs=None, outputs=None"
            )

    # -- structure -------------------------------------------------------------------------------
    def _init_graph(self, inputs: Any, outputs: Any) -> None:
        """Recover the chain of layers from ``outputs`` back to ``inputs``."""
        inputs = self._single("inputs", inputs)
        outputs = self._single("outputs", outputs)
        chain: list[Layer] = []
        tensor = outputs
        while tensor.inbound is not None:
            chain.append(tensor.layer)
            tensor = tensor.inbound
        if tensor is not inputs:
            raise ValueError(
                f"outputs is not connected to inputs: the graph behind {outputs!r} starts at "
                f"{tensor!r}, not at {inputs!r}."
            )
        self._input_layer = inputs.layer
        self.input, self.output = inputs, outputs
        self.inputs, self.outputs = [inputs], [outputs]
        self._batch_input_shape = inputs.shape
        for layer in reversed(chain):
            self._append(layer)
        self.input_shape = inputs.shape
        self.output_shape = outputs.shape
        self.built = True

    @staticmethod
    def _single(name: str, value: Any) -> SymbolicTensor:
        if isinstance(value, (list, tuple)):
            if len(value) != 1:
                raise ValueError(
                    f"Only single-input, single-output models are supported. "
                    f"Received: {name} with {len(value)} tensors"
                )
            value = value[0]
        if not isinstance(value, SymbolicTensor):
            raise ValueError(
                f"{name} must be a symbolic tensor (from layers.Input or a layer called on "
                f"one). Received: {name}={value!r}"
            )
        return value

    def _append(self, layer: Layer) -> None:
        names = {existing.name for existing in self._chain}
        if self._input_layer is not None:
            names.add(self._input_layer.name)
        if layer.name in names:
            raise ValueError(
                f"All layers in a model must have unique names. Received a second layer "
                f"named {layer.name!r}"
            )
        self._chain.append(layer)
        self._on_device = False

    @property
    def layers(self) -> list[Layer]:
        """The model's layers (a functional model lists its InputLayer first, as Keras)."""
        head: list[Layer] = [self._input_layer] if self._input_layer is not None else []
        return head + list(self._chain)

    def get_layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"No such layer: {name!r}. Existing layers: {[lay.name for lay in self.layers]}"
        )

    @property
    def _input_dtype(self) -> torch.dtype:
        if self._input_layer is not None and not self._input_layer.dtype.is_floating_point:
            return torch.long
        first = self._chain[0] if len(self._chain) else None
        return torch.long if first is not None and first.accepts_integer_inputs else torch.float32

    def build(self, input_shape: Shape) -> None:
        """Build every layer in turn, recording each one's output shape."""
        shape: Shape = (None, *tuple(input_shape)[1:])
        dtype = self._input_dtype
        for layer in self._chain:
            layer._maybe_build(shape)
            shape = layer.compute_output_shape(shape, dtype)
            layer.output_shape = shape
            dtype = torch.float32
        self.input_shape = (None, *tuple(input_shape)[1:])
        self.output_shape = shape
        self.built = True

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        x = inputs
        for layer in self._chain:
            x = layer.call(x, training=training)
        return x

    # -- weights ---------------------------------------------------------------------------------
    @property
    def weights(self) -> list[torch.Tensor]:
        return [w for layer in self._chain for w in layer.weights]

    def get_weights(self) -> list[np.ndarray]:
        return [w for layer in self._chain for w in layer.get_weights()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self._chain)
        if len(weights) != expected:
            raise ValueError(
                f"Model {self.name!r} expects {expected} weights, but received {len(weights)}."
            )
        start = 0
        for layer in self._chain:
            count = len(layer.weights)
            layer.set_weights(weights[start:start + count])
            start += count

    def regularization_losses(self) -> list[torch.Tensor]:
        return [penalty for layer in self._chain for penalty in layer.regularization_losses()]

    def _check_chain_input(self, shape: Shape) -> None:
        if len(self._chain):
            self._chain[0]._check_input_spec(shape)

    # -- summary ---------------------------------------------------------------------------------
    def summary(self, print_fn: Callable[[str], None] | None = None) -> str:
        """Print (and return) a table of layers, output shapes and parameter counts."""
        if not self.built:
            raise ValueError(
                f"Model {self.name!r} is not built yet: give the first layer an input_shape "
                f"or call fit()/predict() first."
            )
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer in self.layers:
            shape = layer.output_shape
            rows.append((f"{layer.name} ({type(layer).__name__})",
                         str(shape if shape is not None else "?"), f"{layer.count_params():,}"))
        widths = [max(len(row[i]) for row in rows) + 2 for i in range(3)]
        rule = "=" * sum(widths)
        lines = [f'Model: "{self.name}"', rule,
                 "".join(cell.ljust(width) for cell, width in zip(rows[0], widths, strict=True)),
                 rule]
        for row in rows[1:]:
            lines.append("".join(cell.ljust(width)
                                 for cell, width in zip(row, widths, strict=True)))
        trainable = sum(int(w.numel()) for w in self.weights if w.requires_grad)
        total = sum(int(w.numel()) for w in self.weights)
        lines += [rule, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", rule]
        text = "\n".join(lines)
        (print_fn or print)(text)
        return text

    def count_params(self) -> int:
        return sum(int(w.numel()) for w in self.weights)

    # -- configuration and persistence -----------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_layer": (layers_module.serialize(self._input_layer)
                            if self._input_layer is not None else None),
            "layers": [layers_module.serialize(layer) for layer in self._chain],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], device: str | torch.device = "auto") -> Model:
        input_layer = layers_module.deserialize(config["input_layer"])
        x = input_layer.output
        for layer_config in config["layers"]:
            x = layers_module.deserialize(layer_config)(x)
        return cls(inputs=input_layer.output, outputs=x, name=config["name"], device=device)

    def save(self, path: str | os.PathLike) -> None:
        """Write architecture, compile settings and weights to one safetensors file
        (see ``saving.save_model``)."""
        saving.save_model(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "auto") -> Model:
        """Inverse of ``save``: the same architecture, weights and compile settings."""
        return saving.load_model(path, device=device)
