"""Keras-named layers on torch tensors (images channels-last)."""

from __future__ import annotations

from typing import Any

from .base import Input, InputLayer, InputSpec, Layer, SymbolicTensor
from .convolutional import Conv2D, MaxPooling2D
from .core import Activation, Dense, Dropout, Embedding, Flatten
from .preprocessing import RandomFlip, RandomRotation, RandomTranslation, RandomZoom
from .recurrent import LSTM, SimpleRNN

__all__ = [
    "LSTM", "Activation", "Conv2D", "Dense", "Dropout", "Embedding", "Flatten", "Input",
    "InputLayer", "InputSpec", "Layer", "MaxPooling2D", "RandomFlip", "RandomRotation",
    "RandomTranslation", "RandomZoom", "SimpleRNN", "SymbolicTensor", "deserialize", "get",
    "serialize",
]

_REGISTRY: dict[str, type[Layer]] = {
    cls.__name__: cls
    for cls in (InputLayer, Dense, Activation, Dropout, Flatten, Embedding, Conv2D,
                MaxPooling2D, SimpleRNN, LSTM, RandomFlip, RandomTranslation, RandomRotation,
                RandomZoom)
}


def serialize(layer: Layer) -> dict[str, Any]:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config: dict[str, Any]) -> Layer:
    """Rebuild a layer from ``serialize``'s output (weights are not included)."""
    name = config.get("class_name")
    if name not in _REGISTRY:
        raise ValueError(f"Unknown layer class: {name!r}. Valid names: {sorted(_REGISTRY)}")
    return _REGISTRY[name].from_config(dict(config.get("config", {})))


def get(identifier: Any) -> Layer:
    if isinstance(identifier, Layer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"Could not interpret layer identifier: {identifier!r}")
