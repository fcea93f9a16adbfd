"""``Sequential``: a plain stack of layers, added one at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .. import layers as layers_module
from ..layers.base import InputLayer, Layer, SymbolicTensor
from . import saving
from .functional import Model


@saving.register_model_class
class Sequential(Model):
    """A plain stack of layers: ``Sequential([Dense(32, input_shape=(784,)), Dense(10)])``."""

    def __init__(self, layers: Sequence[Any] | None = None, name: str | None = None,
                 device: str | torch.device = "auto", **kwargs: Any) -> None:
        super().__init__(name=name, device=device, **kwargs)
        for layer in layers or []:
            self.add(layer)

    def add(self, layer: Any) -> None:
        """Append a layer (or, first, an ``Input``); builds it if the input shape is known."""
        if isinstance(layer, SymbolicTensor) and isinstance(layer.layer, InputLayer):
            layer = layer.layer
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Only layers can be added to a Sequential model. Received: {layer!r} "
                f"(of type {type(layer).__name__})"
            )
        if isinstance(layer, InputLayer):
            if len(self._chain) or self._input_layer is not None:
                raise ValueError(
                    "An Input can only be the first element of a Sequential model. "
                    f"Received: {layer.name!r} after {[lay.name for lay in self.layers]}"
                )
            self._input_layer = layer
            self._batch_input_shape = layer._batch_input_shape
            return
        if not len(self._chain) and self._batch_input_shape is None:
            self._batch_input_shape = layer._batch_input_shape
        self._append(layer)
        if self._batch_input_shape is not None:
            self.build(self._batch_input_shape)
        else:
            self.built = False

    @property
    def layers(self) -> list[Layer]:
        """The layers added (an ``Input`` given first is not listed, as in Keras)."""
        return list(self._chain)

    def pop(self) -> Layer:
        if not len(self._chain):
            raise ValueError("There are no layers in the model to pop.")
        layer = self._chain[-1]
        del self._chain[-1]
        if len(self._chain) and self._chain[-1].output_shape is not None:
            self.output_shape = self._chain[-1].output_shape
        return layer

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_layer": (layers_module.serialize(self._input_layer)
                            if self._input_layer is not None else None),
            "batch_input_shape": (list(self.input_shape) if self.input_shape is not None
                                  else None),
            "layers": [layers_module.serialize(layer) for layer in self._chain],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any],
                    device: str | torch.device = "auto") -> Sequential:
        model = cls(name=config["name"], device=device)
        if config.get("input_layer") is not None:
            model.add(layers_module.deserialize(config["input_layer"]))
        for layer_config in config["layers"]:
            model.add(layers_module.deserialize(layer_config))
        if not model.built and config.get("batch_input_shape") is not None:
            model.build(tuple(config["batch_input_shape"]))
        return model
