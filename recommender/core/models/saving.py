"""Saving and loading models: one safetensors file holding weights, architecture and compile
settings.

Tensors (Keras layouts) are keyed ``"<layer name>/<weight name>"``; the JSON config travels in
the file's metadata. Model classes register themselves here (``register_model_class``) so that
``load_model`` can rebuild them by name without this module importing them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .. import losses, optimizers

if TYPE_CHECKING:  # annotations only: functional.py imports this module
    from .functional import Model

_FORMAT = "recommender.core.model"

_MODEL_CLASSES: dict[str, type[Model]] = {}

M = TypeVar("M", bound="Model")


def register_model_class(cls: type[M]) -> type[M]:
    """Class decorator: ``load_model`` rebuilds files whose ``class_name`` is ``cls.__name__``."""
    _MODEL_CLASSES[cls.__name__] = cls
    return cls


def compile_config(model: Model) -> dict[str, Any] | None:
    """The model's ``compile`` arguments as JSON, or None when it cannot be saved."""
    if model.optimizer is None or model.loss is None:  # not compiled
        return None
    try:
        loss = (model._loss_id if isinstance(model._loss_id, str)
                else losses.serialize(model.loss))
    except ValueError:
        return None  # a custom loss cannot be saved; the model loads uncompiled
    return {"optimizer": optimizers.serialize(model.optimizer), "loss": loss,
            "metrics": model._metric_ids}


def save_model(model: Model, path: str | os.PathLike) -> None:
    """Write architecture, compile settings and weights to one safetensors file.

    The file is written to a temporary name and renamed, so an existing file is never left
    half-written.
    """
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built yet: nothing to save.")
    tensors: dict[str, torch.Tensor] = {}
    for layer in model._chain:
        for weight_name in layer._weight_names:
            value = layer._to_keras(weight_name, getattr(layer, weight_name).detach())
            tensors[f"{layer.name}/{weight_name}"] = value.cpu().contiguous()
    document = {"class_name": type(model).__name__, "config": model.get_config(),
                "compile": compile_config(model)}
    metadata = {"format": _FORMAT, "version": "1", "model": json.dumps(document)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_model(path: str | os.PathLike, device: str | torch.device = "auto") -> Model:
    """Load a model written by ``Model.save``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No saved model at {str(path)!r}")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if metadata.get("format") != _FORMAT:
            raise ValueError(
                f"{str(path)!r} is not a model saved by recommender.core "
                f"(format={metadata.get('format')!r})."
            )
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    document = json.loads(metadata["model"])
    model_class = _MODEL_CLASSES.get(document["class_name"])
    if model_class is None:
        raise ValueError(f"Unknown model class in {str(path)!r}: {document['class_name']!r}")
    model = model_class.from_config(document["config"], device=device)
    for layer in model._chain:
        weights = []
        for weight_name in layer._weight_names:
            key = f"{layer.name}/{weight_name}"
            if key not in tensors:
                raise ValueError(f"{str(path)!r} has no tensor {key!r}.")
            weights.append(tensors[key])
        if weights:
            layer.set_weights(weights)
    settings = document.get("compile")
    if settings is not None:
        model.compile(optimizer=optimizers.get(settings["optimizer"]),
                      loss=settings["loss"], metrics=settings["metrics"])
    return model
