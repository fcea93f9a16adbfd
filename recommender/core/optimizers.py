"""Optimizers with Keras's names and defaults, running torch.optim's update rules underneath.

One interface serves two kinds of caller:

* autograd users (``Model.fit``): ``optimizer.step(variables)`` after ``loss.backward()``
  applies whatever is in each variable's ``.grad``;
* code that computes its own gradients (the RBM's contrastive-divergence statistics):
  ``optimizer.apply_gradients(zip(grads, variables))``, exactly as in Keras.

Both go through the same ``torch.optim`` instance, created lazily for the list of variables it
first sees (its state, e.g. momentum buffers, then lives as long as the optimizer object).
Gradients are *descent* directions' negatives, as everywhere in torch: the optimizer subtracts.

Differences from Keras, deliberately kept because the update rules are torch's:
* SGD momentum is torch's form (``b = m*b + g; w -= lr*b``), the same trajectory as Keras's
  ``v = m*v - lr*g; w += v`` for a constant learning rate.
* RMSprop/Adam/Adagrad use torch's epsilon placement (outside the square root).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from . import registry


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    value = float(value)
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}. Received: {name}={value!r}")
    return value


class Optimizer:
    """Base class. Subclasses name their torch.optim class and map their config onto it."""

    # A torch.optim class, called as ``torch_class(variables, lr=..., **self._torch_kwargs())``
    # (typed as a factory: the base ``torch.optim.Optimizer`` takes no ``lr``, its subclasses do)
    torch_class: Callable[..., torch.optim.Optimizer]
    fusable = False  # whether torch_class has a fused CPU/CUDA kernel the core uses

    def __init__(self, learning_rate: float = 0.001) -> None:
        self._learning_rate = _check_positive("learning_rate", learning_rate)
        self._torch_opt: torch.optim.Optimizer | None = None
        self._variables: list[torch.Tensor] = []
        self.iterations = 0

    # -- configuration -------------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        """Changing the rate mid-training keeps the optimizer state (e.g. momentum)."""
        self._learning_rate = _check_positive("learning_rate", value)
        if self._torch_opt is not None:
            for group in self._torch_opt.param_groups:
                group["lr"] = self._learning_rate

    def _torch_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self._learning_rate}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # -- building --------------------------------------------------------------------------
    def build(self, variables: Sequence[torch.Tensor]) -> torch.optim.Optimizer:
        """Create (and return) the torch.optim instance, and its state, for these variables."""
        variables = list(variables)
        if not variables:
            raise ValueError("Optimizer.build() needs at least one variable. Received: []")
        self._variables = variables
        kwargs = self._torch_kwargs()
        if self.fusable and all(v.is_floating_point() and v.device.type in ("cpu", "cuda")
                                for v in variables):
            # torch's fused kernel: one pass over each variable per step instead of three
            # (momentum, then the update); the same rule, rounded the same up to FMA.
            kwargs["fused"] = True
        self._torch_opt = self.torch_class(variables, lr=self._learning_rate, **kwargs)
        return self._torch_opt

    @property
    def built(self) -> bool:
        return self._torch_opt is not None

    def _ensure_built(self, variables: Sequence[torch.Tensor]) -> torch.optim.Optimizer:
        """The torch.optim instance, built for ``variables`` or extended to the new ones."""
        if self._torch_opt is None:
            return self.build(variables)
        known = {id(v) for v in self._variables}
        new = [v for v in variables if id(v) not in known]
        if new:
            # A variable seen for the first time joins with fresh state.
            self._torch_opt.add_param_group({"params": new})
            self._variables.extend(new)
        return self._torch_opt

    # -- applying ----------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, variables: Sequence[torch.Tensor] | None = None) -> None:
        """Apply the gradients already in ``v.grad`` (after ``loss.backward()``)."""
        if variables is not None:
            self._ensure_built(list(variables))
        if self._torch_opt is None:
            raise ValueError("Optimizer has no variables: pass them to step() or build() first.")
        self._torch_opt.step()
        self.iterations += 1

    def zero_grad(self) -> None:
        if self._torch_opt is not None:
            self._torch_opt.zero_grad(set_to_none=True)

    @torch.no_grad()
    def apply_gradients(
        self, grads_and_vars: Iterable[tuple[torch.Tensor, torch.Tensor]]
    ) -> None:
        """Apply gradients computed outside autograd: ``zip(grads, variables)`` as in Keras.

        Each gradient must have its variable's shape. The variables are updated in place.
        """
        pairs = list(grads_and_vars)
        if not pairs:
            raise ValueError("apply_gradients() received no (gradient, variable) pairs.")
        for i, (grad, var) in enumerate(pairs):
            if grad.shape != var.shape:
                raise ValueError(
                    f"Gradient {i} has shape {tuple(grad.shape)} but its variable has shape "
                    f"{tuple(var.shape)}."
                )
        variables = [var for _, var in pairs]
        torch_opt = self._ensure_built(variables)
        for grad, var in pairs:
            var.grad = grad.to(dtype=var.dtype, device=var.device)
        torch_opt.step()
        for var in variables:
            var.grad = None
        self.iterations += 1

    def state_dict(self) -> dict[str, Any]:
        return {} if self._torch_opt is None else self._torch_opt.state_dict()


class SGD(Optimizer):
    torch_class = torch.optim.SGD
    fusable = True

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False) -> None:
        super().__init__(learning_rate)
        self.momentum = _check_positive("momentum", momentum, allow_zero=True)
        if self.momentum >= 1:
            raise ValueError(f"momentum must be in [0, 1). Received: momentum={momentum!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0. Received: momentum=0.0")
        self.nesterov = bool(nesterov)

    def _torch_kwargs(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adagrad(Optimizer):
    torch_class = torch.optim.Adagrad

    def __init__(self, learning_rate: float = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7) -> None:
        super().__init__(learning_rate)
        self.initial_accumulator_value = _check_positive(
            "initial_accumulator_value", initial_accumulator_value, allow_zero=True)
        self.epsilon = _check_positive("epsilon", epsilon)

    def _torch_kwargs(self) -> dict[str, Any]:
        return {"initial_accumulator_value": self.initial_accumulator_value, "eps": self.epsilon}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class RMSprop(Optimizer):
    torch_class = torch.optim.RMSprop

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False) -> None:
        super().__init__(learning_rate)
        self.rho = _check_positive("rho", rho)
        self.momentum = _check_positive("momentum", momentum, allow_zero=True)
        self.epsilon = _check_positive("epsilon", epsilon)
        self.centered = bool(centered)

    def _torch_kwargs(self) -> dict[str, Any]:
        return {"alpha": self.rho, "momentum": self.momentum, "eps": self.epsilon,
                "centered": self.centered}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adam(Optimizer):
    torch_class = torch.optim.Adam

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False) -> None:
        super().__init__(learning_rate)
        for name, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= float(value) < 1:
                raise ValueError(f"{name} must be in [0, 1). Received: {name}={value!r}")
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = _check_positive("epsilon", epsilon)
        self.amsgrad = bool(amsgrad)

    def _torch_kwargs(self) -> dict[str, Any]:
        return {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon,
                "amsgrad": self.amsgrad}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


_REGISTRY: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adagrad": Adagrad,
    "rmsprop": RMSprop,
    "adam": Adam,
}


def get(identifier: Any) -> Optimizer:
    """Resolve a name (``"adam"``), a config dict or an instance to an optimizer.

    A name gives a new instance with Keras's defaults.
    """
    return registry.resolve(identifier, _REGISTRY, "optimizer", instance_of=Optimizer,
                            instantiate=True, from_config=True, allow_callable=False)


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    return {"class_name": type(optimizer).__name__.lower(), "config": optimizer.get_config()}
