"""``Sequential`` and functional ``Model``: compile, fit, evaluate, predict, summary, save/load.

Training runs in small named steps (skorch's ``fit -> run_epoch -> train_step``): ``fit``
prepares data, callbacks and the optimizer; ``_run_epoch`` walks the batches; ``_train_step``
is one forward/backward/update. The hot path does no host synchronisation per batch: the
epoch's loss and metric sums stay on the device and are read once at the end of the epoch
(unless a callback asks for per-batch logs).

Every layer here takes one input, so a model is a chain of layers from its input to its
output; ``Model(inputs=..., outputs=...)`` recovers that chain from the symbolic graph.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from . import callbacks as callbacks_module
from . import layers as layers_module
from . import losses, optimizers
from . import metrics as metrics_module
from .backend import resolve_device, to_tensor
from .layers.base import InputLayer, Layer, Shape, SymbolicTensor

_FORMAT = "recommender.core.model"


def _check_positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be an int {bound}. Received: {name}={value!r}")
    return int(value)


class Model(Layer):
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
        self.stop_training = False
        self.optimizer: optimizers.Optimizer | None = None
        self.loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
        self.history: callbacks_module.History | None = None
        self._loss_id: Any = None
        self._metric_ids: list[str] = []
        self._metric_fns: list[Callable] | None = None
        self._chain = torch.nn.ModuleList()  # the layers input -> output, InputLayer excluded
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
        head = [self._input_layer] if self._input_layer is not None else []
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

    def _regularization_penalty(self) -> torch.Tensor | None:
        penalties = self.regularization_losses()
        return torch.stack(penalties).sum() if penalties else None

    # -- compile ---------------------------------------------------------------------------------
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None,
                metrics: Sequence[str] | None = None) -> None:
        """Choose the optimizer (name or instance), the loss and the metrics to report."""
        if loss is None:
            raise ValueError("compile() needs a loss. Received: loss=None")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        self._loss_id = loss
        if isinstance(metrics, str):
            metrics = [metrics]
        self._metric_ids = list(metrics or [])
        for metric in self._metric_ids:
            metrics_module.get(metric)  # validates the name now
        self._metric_fns = None

    def _check_compiled(self) -> None:
        if self.optimizer is None or self.loss is None:
            raise ValueError(
                f"Model {self.name!r} must be compiled before training or evaluation: "
                f"call model.compile(optimizer, loss)."
            )

    def _resolve_metrics(self) -> list[Callable]:
        if self._metric_fns is None:
            loss_name = self._loss_id if isinstance(self._loss_id, str) else None
            if loss_name is not None:
                loss_name = losses.serialize(losses.get(loss_name))
            self._metric_fns = [metrics_module.get(m, loss_name, self.output_shape)
                                for m in self._metric_ids]
        return self._metric_fns

    # -- data ------------------------------------------------------------------------------------
    def _prepare_x(self, x: Any, argument: str = "x") -> torch.Tensor:
        if x is None:
            raise ValueError(f"{argument} is required. Received: {argument}=None")
        tensor = to_tensor(x)
        if tensor.dim() == 0:
            raise ValueError(f"{argument} must have a batch axis. Received: a scalar")
        dtype = self._input_dtype
        if dtype == torch.long and not tensor.is_floating_point():
            tensor = tensor.long()
        elif dtype != torch.long:
            tensor = tensor.float()
        shape = (None, *tensor.shape[1:])
        if self._batch_input_shape is not None:
            self._check_declared_shape(shape)
        if not self.built or (self.input_shape is None):
            self.build(shape)
        else:
            self._check_chain_input(shape)
        return tensor

    def _check_chain_input(self, shape: Shape) -> None:
        if len(self._chain):
            self._chain[0]._check_input_spec(shape)

    def _prepare_y(self, y: Any, n: int, argument: str = "y") -> torch.Tensor:
        if y is None:
            raise ValueError(f"{argument} is required. Received: {argument}=None")
        tensor = to_tensor(y)
        if tensor.dim() == 0 or tensor.shape[0] != n:
            received = "a scalar" if tensor.dim() == 0 else f"{tensor.shape[0]} samples"
            x_name = "x" if argument == "y" else argument.replace("y", "x")
            raise ValueError(
                f"{x_name} and {argument} must have the same number of samples. Received: "
                f"{x_name} has {n} samples, {argument} has {received}"
            )
        sparse = losses.get(self._loss_id) is losses.sparse_categorical_crossentropy \
            if isinstance(self._loss_id, str) else False
        return tensor.long() if sparse else tensor.float()

    def _to_device(self) -> None:
        if not self._on_device:
            self.to(self.device)
            self._on_device = True

    @staticmethod
    def _batch_size(batch_size: Any) -> int:
        return 32 if batch_size is None else _check_positive_int("batch_size", batch_size)

    # -- training --------------------------------------------------------------------------------
    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: int | str = "auto",
            callbacks: Sequence[callbacks_module.Callback] | None = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            initial_epoch: int = 0) -> callbacks_module.History:
        """Train for ``epochs`` passes over ``(x, y)``; returns the ``History``.

        ``validation_split`` holds out the *last* fraction of the samples (before shuffling),
        as Keras does; ``validation_data=(x_val, y_val)`` takes precedence over it.
        """
        self._check_compiled()
        batch_size = self._batch_size(batch_size)
        epochs = _check_positive_int("epochs", epochs, allow_zero=True)
        verbose = 1 if verbose == "auto" else int(verbose)
        if not 0.0 <= float(validation_split) < 1.0:
            raise ValueError(
                f"validation_split must be in [0, 1). Received: validation_split="
                f"{validation_split!r}"
            )
        x_all = self._prepare_x(x)
        y_all = self._prepare_y(y, x_all.shape[0])
        val: tuple[torch.Tensor, torch.Tensor] | None = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError(
                    "validation_data must be a tuple (x_val, y_val). "
                    f"Received: {type(validation_data).__name__}"
                )
            x_val = self._prepare_x(validation_data[0], "x_val")
            val = (x_val, self._prepare_y(validation_data[1], x_val.shape[0], "y_val"))
            x_train, y_train = x_all, y_all
        elif validation_split > 0:
            split_at = int(x_all.shape[0] * (1.0 - validation_split))
            if split_at == 0 or split_at == x_all.shape[0]:
                raise ValueError(
                    f"validation_split={validation_split} leaves an empty training or "
                    f"validation set for {x_all.shape[0]} samples."
                )
            x_train, y_train = x_all[:split_at], y_all[:split_at]
            val = (x_all[split_at:], y_all[split_at:])
        else:
            x_train, y_train = x_all, y_all
        if x_train.shape[0] == 0:
            raise ValueError("fit() received no samples. Received: x with 0 samples")

        self._to_device()
        x_train, y_train = x_train.to(self.device), y_train.to(self.device)
        if val is not None:
            val = (val[0].to(self.device), val[1].to(self.device))
        trainable = [w for w in self.weights if w.requires_grad]
        if not trainable:
            raise ValueError(f"Model {self.name!r} has no trainable weights to fit.")
        self.optimizer._ensure_built(trainable)

        history = callbacks_module.History()
        user_callbacks = list(callbacks or [])
        callback_list = callbacks_module.CallbackList(
            [*user_callbacks, history], model=self,
            params={"epochs": epochs, "batch_size": batch_size, "verbose": verbose,
                    "steps": -(-x_train.shape[0] // batch_size)})
        wants_batch_logs = any(type(cb).on_batch_end is not callbacks_module.Callback.on_batch_end
                               for cb in user_callbacks)
        self.stop_training = False
        callback_list.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            progress = None
            if verbose == 1:
                progress = tqdm(total=callback_list.params["steps"], unit="batch",
                                desc=f"Epoch {epoch + 1}/{epochs}", leave=True)
            logs = self._run_epoch(x_train, y_train, batch_size, shuffle,
                                   callback_list if wants_batch_logs else None, progress)
            if val is not None:
                val_logs = self._evaluate_tensors(val[0], val[1], batch_size)
                logs.update({f"val_{key}": value for key, value in val_logs.items()})
            if progress is not None:
                progress.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
                progress.close()
            elif verbose >= 2:
                text = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
                print(f"Epoch {epoch + 1}/{epochs} - {text}")
            callback_list.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        callback_list.on_train_end()
        self.history = history
        return history

    def _run_epoch(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool,
                   batch_callbacks: callbacks_module.CallbackList | None,
                   progress: Any) -> dict[str, float]:
        """One pass over the data in batches; returns the epoch's mean loss and metrics."""
        n = x.shape[0]
        metric_fns = self._resolve_metrics()
        order = torch.randperm(n, device=x.device) if shuffle else None
        loss_sum = torch.zeros((), device=x.device)
        metric_sums = [torch.zeros((), device=x.device) for _ in metric_fns]
        for batch_index, start in enumerate(range(0, n, batch_size)):
            if order is None:
                x_batch, y_batch = x[start:start + batch_size], y[start:start + batch_size]
            else:
                index = order[start:start + batch_size]
                x_batch, y_batch = x[index], y[index]
            loss, y_pred = self._train_step(x_batch, y_batch)
            loss_sum += loss * x_batch.shape[0]
            for i, fn in enumerate(metric_fns):
                metric_sums[i] += fn(y_batch, y_pred)
            if batch_callbacks is not None:
                batch_callbacks.on_batch_end(
                    batch_index, {"loss": float(loss), "size": int(x_batch.shape[0])})
            if progress is not None:
                progress.update(1)
        # The one host sync of the epoch.
        totals = torch.stack([loss_sum, *metric_sums]).tolist()
        logs = {"loss": totals[0] / n}
        for name, total in zip(self._metric_ids, totals[1:], strict=True):
            logs[name] = total / n
        return logs

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, loss (+ regularization penalties), backward, optimizer update."""
        y_pred = self.call(x, training=True)
        loss = self.loss(y, y_pred)
        penalty = self._regularization_penalty()
        if penalty is not None:
            loss = loss + penalty
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return loss.detach(), y_pred.detach()

    # -- inference -------------------------------------------------------------------------------
    @torch.no_grad()
    def _evaluate_tensors(self, x: torch.Tensor, y: torch.Tensor,
                          batch_size: int) -> dict[str, float]:
        metric_fns = self._resolve_metrics()
        loss_sum = torch.zeros((), device=x.device)
        metric_sums = [torch.zeros((), device=x.device) for _ in metric_fns]
        for start in range(0, x.shape[0], batch_size):
            x_batch, y_batch = x[start:start + batch_size], y[start:start + batch_size]
            y_pred = self.call(x_batch, training=False)
            loss_sum += self.loss(y_batch, y_pred) * x_batch.shape[0]
            for i, fn in enumerate(metric_fns):
                metric_sums[i] += fn(y_batch, y_pred)
        penalty = self._regularization_penalty()
        totals = torch.stack([loss_sum, *metric_sums]).tolist()
        n = x.shape[0]
        logs = {"loss": totals[0] / n + (float(penalty) if penalty is not None else 0.0)}
        for name, total in zip(self._metric_ids, totals[1:], strict=True):
            logs[name] = total / n
        return logs

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None,
                 verbose: int = 0, return_dict: bool = False) -> Any:
        """Loss (with regularization penalties, as Keras) and metrics on ``(x, y)``.

        Returns the loss alone when no metrics were compiled, else ``[loss, *metrics]``, or
        a dict with ``return_dict=True``.
        """
        self._check_compiled()
        batch_size = self._batch_size(batch_size)
        x_t = self._prepare_x(x)
        y_t = self._prepare_y(y, x_t.shape[0])
        self._to_device()
        logs = self._evaluate_tensors(x_t.to(self.device), y_t.to(self.device), batch_size)
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    @torch.no_grad()
    def predict(self, x: Any, batch_size: int | None = None, verbose: int = 0) -> np.ndarray:
        """Outputs for ``x`` as a numpy array, computed in inference mode in batches."""
        batch_size = self._batch_size(batch_size)
        x_t = self._prepare_x(x)
        self._to_device()
        x_t = x_t.to(self.device)
        outputs = [self.call(x_t[start:start + batch_size], training=False)
                   for start in range(0, x_t.shape[0], batch_size)]
        if not outputs:
            raise ValueError("predict() received no samples. Received: x with 0 samples")
        return torch.cat(outputs).cpu().numpy()

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

    def _compile_config(self) -> dict[str, Any] | None:
        if self.optimizer is None:
            return None
        try:
            loss = self._loss_id if isinstance(self._loss_id, str) else losses.serialize(self.loss)
        except ValueError:
            return None  # a custom loss cannot be saved; the model loads uncompiled
        return {"optimizer": optimizers.serialize(self.optimizer), "loss": loss,
                "metrics": self._metric_ids}

    def save(self, path: str | os.PathLike) -> None:
        """Write architecture, compile settings and weights to one safetensors file.

        Tensors (Keras layouts) are keyed ``"<layer name>/<weight name>"``; the JSON config
        travels in the file's metadata. The file is written to a temporary name and renamed,
        so an existing file is never left half-written.
        """
        if not self.built:
            raise ValueError(f"Model {self.name!r} is not built yet: nothing to save.")
        tensors: dict[str, torch.Tensor] = {}
        for layer in self._chain:
            for weight_name in layer._weight_names:
                value = layer._to_keras(weight_name, getattr(layer, weight_name).detach())
                tensors[f"{layer.name}/{weight_name}"] = value.cpu().contiguous()
        document = {"class_name": type(self).__name__, "config": self.get_config(),
                    "compile": self._compile_config()}
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

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "auto") -> Model:
        """Inverse of ``save``: the same architecture, weights and compile settings."""
        return load_model(path, device=device)


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


_MODEL_CLASSES: dict[str, type[Model]] = {"Model": Model, "Sequential": Sequential}


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
    compile_config = document.get("compile")
    if compile_config is not None:
        model.compile(optimizer=optimizers.get(compile_config["optimizer"]),
                      loss=compile_config["loss"], metrics=compile_config["metrics"])
    return model
