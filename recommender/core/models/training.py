"""The training loop of ``Model``: compile, fit, evaluate, predict.

Training runs in small named steps (skorch's ``fit -> run_epoch -> train_step``): ``fit``
prepares data, callbacks and the optimizer; ``_run_epoch`` walks the batches; ``_train_step``
is one forward/backward/update. ``History`` and ``EarlyStopping`` are driven from
``on_epoch_end``. The hot path does no host synchronisation per batch: the epoch's loss and
metric sums stay on the device and are read once at the end of the epoch (unless a callback
asks for per-batch logs).

``Trainer`` is the layer ``functional.Model`` builds on (Keras's ``trainers/trainer.py``): it
uses the ``Layer`` API (``call``, ``weights``, ``build``, shapes) and three hooks about the
model's chain of layers, ``device``, ``_input_dtype`` and ``_check_chain_input``, which
``functional.Model`` provides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import callbacks as callbacks_module
from .. import losses, optimizers
from .. import metrics as metrics_module
from ..backend import to_tensor
from ..layers.base import Layer, Shape

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (y_true, y_pred) -> scalar


def _check_positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be an int {bound}. Received: {name}={value!r}")
    return int(value)


class Trainer(Layer):
    """``compile``, ``fit``, ``evaluate`` and ``predict`` for a model made of layers."""

    device: torch.device  # where fit/evaluate/predict run; set by the model's __init__
    _on_device: bool  # whether the weights were moved to ``device`` since the last change

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stop_training = False
        self.optimizer: optimizers.Optimizer | None = None
        self.loss: LossFn | None = None
        self.history: callbacks_module.History | None = None
        self._loss_id: Any = None
        self._metric_ids: list[str] = []
        self._metric_fns: list[Callable] | None = None

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

    def _compiled(self) -> tuple[optimizers.Optimizer, LossFn]:
        """The optimizer and the loss given to ``compile``; a ValueError before it."""
        if self.optimizer is None or self.loss is None:
            raise ValueError(
                f"Model {self.name!r} must be compiled before training or evaluation: "
                f"call model.compile(optimizer, loss)."
            )
        return self.optimizer, self.loss

    # -- hooks the model provides (its chain of layers) --------------------------------------
    @property
    def _input_dtype(self) -> torch.dtype:
        """The dtype inputs are converted to: ``torch.long`` for index inputs."""
        raise NotImplementedError

    def _check_chain_input(self, shape: Shape) -> None:
        """Raise a ValueError when the first layer of the built model refuses ``shape``."""
        raise NotImplementedError

    def _regularization_penalty(self) -> torch.Tensor | None:
        """The sum of the layers' regularization penalties, or None without regularizers."""
        penalties = self.regularization_losses()
        return torch.stack(penalties).sum() if penalties else None

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
        optimizer, _ = self._compiled()
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
        optimizer._ensure_built(trainable)

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
        optimizer, loss_fn = self._compiled()
        y_pred = self.call(x, training=True)
        loss = loss_fn(y, y_pred)
        penalty = self._regularization_penalty()
        if penalty is not None:
            loss = loss + penalty
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss.detach(), y_pred.detach()

    # -- inference -------------------------------------------------------------------------------
    @torch.no_grad()
    def _evaluate_tensors(self, x: torch.Tensor, y: torch.Tensor,
                          batch_size: int) -> dict[str, float]:
        _, loss_fn = self._compiled()
        metric_fns = self._resolve_metrics()
        loss_sum = torch.zeros((), device=x.device)
        metric_sums = [torch.zeros((), device=x.device) for _ in metric_fns]
        for start in range(0, x.shape[0], batch_size):
            x_batch, y_batch = x[start:start + batch_size], y[start:start + batch_size]
            y_pred = self.call(x_batch, training=False)
            loss_sum += loss_fn(y_batch, y_pred) * x_batch.shape[0]
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
        self._compiled()
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
