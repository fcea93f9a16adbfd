"""The layer contract, symbolic tensors for the functional API, and ``Input``.

Layer contract (as in Keras ``layers/core/dense.py``):

* ``__init__`` validates and stores configuration only;
* ``build(input_shape)`` creates the weights, once, from the first input shape seen;
* ``call(inputs, training=False)`` is pure computation.

Calling a layer on a ``SymbolicTensor`` (what ``Input`` returns) records a node of the
functional graph instead of computing anything; calling it on a ``torch.Tensor`` computes.

Layers are ``torch.nn.Module`` subclasses, so parameters, ``.to(device)`` and autograd come from
torch. Some layers store a kernel in torch's layout internally (Conv2D); ``get_weights`` and
``set_weights`` always speak Keras's layouts (``Layer._to_keras`` / ``Layer._from_keras``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import torch

from .. import initializers, regularizers
from ..backend import snake_case, unique_name

Shape = tuple[int | None, ...]


def _check_shape_arg(name: str, value: Any, layer_name: str) -> Shape:
    """Validate an ``input_shape``-style argument: a tuple of positive ints (or None)."""
    if isinstance(value, int):
        value = (value,)
    try:
        dims = tuple(value)
    except TypeError as exc:
        raise ValueError(
            f"Layer {layer_name!r}: {name} must be a tuple of positive ints. "
            f"Received: {name}={value!r}"
        ) from exc
    for dim in dims:
        if dim is not None and (not isinstance(dim, (int, np.integer)) or dim <= 0):
            raise ValueError(
                f"Layer {layer_name!r}: {name} must be a tuple of positive ints. "
                f"Received: {name}={value!r}"
            )
    return tuple(None if d is None else int(d) for d in dims)


@dataclass
class InputSpec:
    """What a built layer accepts: a rank (exact or minimum) and fixed sizes on some axes."""

    ndim: int | None = None
    min_ndim: int | None = None
    axes: dict[int, int] = field(default_factory=dict)


class SymbolicTensor:
    """A placeholder flowing through the functional API: a shape and the node that made it.

    ``shape[0]`` is the batch axis, always ``None``.
    """

    _ids = itertools.count()

    def __init__(self, shape: Shape, layer: Layer, inbound: SymbolicTensor | None,
                 dtype: torch.dtype = torch.float32) -> None:
        self.shape = tuple(shape)
        self.layer = layer
        self.inbound = inbound
        self.dtype = dtype
        self.id = next(SymbolicTensor._ids)

    def __repr__(self) -> str:
        return f"<SymbolicTensor shape={self.shape} from layer {self.layer.name!r}>"


class Layer(torch.nn.Module):
    """Base class of every layer (and of ``Model``)."""

    # Layers that take integer indices (Embedding) keep integer inputs as they are.
    accepts_integer_inputs = False

    def __init__(self, *, name: str | None = None, trainable: bool = True,
                 input_shape: Sequence[int | None] | None = None,
                 batch_input_shape: Sequence[int | None] | None = None,
                 input_dim: int | None = None, dtype: Any = None) -> None:
        super().__init__()
        self.name = name or unique_name(snake_case(type(self).__name__))
        self._trainable = bool(trainable)
        self.built = False
        self.input_spec: InputSpec | None = None
        self.input_shape: Shape | None = None   # set by build, batch axis None
        self.output_shape: Shape | None = None  # set when called symbolically / by Model
        self._weight_names: list[str] = []
        self._regularized: list[tuple[Callable[[torch.Tensor], torch.Tensor], str]] = []
        # Keras lets the first layer of a Sequential declare its input shape.
        self._batch_input_shape: Shape | None = None
        if batch_input_shape is not None:
            self._batch_input_shape = _check_shape_arg(
                "batch_input_shape", batch_input_shape, self.name)
        elif input_shape is not None:
            self._batch_input_shape = (None, *_check_shape_arg("input_shape", input_shape,
                                                               self.name))
        elif input_dim is not None:
            self._batch_input_shape = (None, *_check_shape_arg("input_dim", input_dim,
                                                               self.name))

    # -- weights ----------------------------------------------------------------------------
    def add_weight(self, name: str, shape: Sequence[int], initializer: Any = "glorot_uniform",
                   regularizer: Any = None, trainable: bool = True) -> torch.nn.Parameter:
        """Create, register and return a parameter initialised in Keras layout ``shape``."""
        init = initializers.get(initializer)
        value = init(tuple(shape), torch.float32)
        param = torch.nn.Parameter(value, requires_grad=trainable and self._trainable)
        self.register_parameter(name, param)
        self._weight_names.append(name)
        reg = regularizers.get(regularizer)
        if reg is not None:
            self._regularized.append((reg, name))
        return param

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for param in self.parameters():
            param.requires_grad_(self._trainable)

    @property
    def weights(self) -> list[torch.Tensor]:
        """The layer's variables, in ``get_weights`` order (torch layout as stored)."""
        return [getattr(self, name) for name in self._weight_names]

    @property
    def trainable_weights(self) -> list[torch.Tensor]:
        return [w for w in self.weights if w.requires_grad]

    @property
    def non_trainable_weights(self) -> list[torch.Tensor]:
        return [w for w in self.weights if not w.requires_grad]

    def regularization_losses(self) -> list[torch.Tensor]:
        """The penalties of this layer's weight regularizers (differentiable)."""
        return [reg(getattr(self, name)) for reg, name in self._regularized]

    def _to_keras(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """Stored layout -> Keras layout (identity unless a layer stores torch's layout)."""
        return value

    def _from_keras(self, name: str, value: torch.Tensor) -> torch.Tensor:
        return value

    def get_weights(self) -> list[np.ndarray]:
        """Weights as numpy arrays in Keras layouts (Dense kernel ``(in, out)``, ...)."""
        return [self._to_keras(name, getattr(self, name).detach()).cpu().numpy().copy()
                for name in self._weight_names]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set weights from arrays in Keras layouts; shapes must match ``get_weights()``."""
        weights = list(weights)
        if not self.built:
            raise ValueError(
                f"Layer {self.name!r} is not built yet: call it on an input (or give it an "
                f"input_shape) before set_weights()."
            )
        if len(weights) != len(self._weight_names):
            raise ValueError(
                f"Layer {self.name!r} expects {len(self._weight_names)} weights, "
                f"but received {len(weights)}."
            )
        for name, value in zip(self._weight_names, weights, strict=True):
            param = getattr(self, name)
            tensor = torch.as_tensor(np.asarray(value), dtype=param.dtype)
            expected = tuple(self._to_keras(name, param.detach()).shape)
            if tuple(tensor.shape) != expected:
                raise ValueError(
                    f"Layer {self.name!r}: weight {name!r} has shape {expected}, "
                    f"but received shape {tuple(tensor.shape)}."
                )
            with torch.no_grad():
                param.copy_(self._from_keras(name, tensor).to(param.device))

    def count_params(self) -> int:
        return sum(int(w.numel()) for w in self.weights)

    # -- building and calling ---------------------------------------------------------------
    def build(self, input_shape: Shape) -> None:
        """Create weights for ``input_shape`` (batch axis first). Default: no weights."""

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return self.call(inputs, training=training)

    def _maybe_build(self, input_shape: Shape) -> None:
        input_shape = (None, *tuple(input_shape)[1:])
        if self._batch_input_shape is not None:
            self._check_declared_shape(input_shape)
        if not self.built:
            self.build(input_shape)
            self.input_shape = input_shape
            self.built = True
        self._check_input_spec(input_shape)

    def _check_declared_shape(self, input_shape: Shape) -> None:
        declared = self._batch_input_shape
        if declared is None:  # no input shape declared: any shape is accepted
            return
        compatible = len(declared) == len(input_shape) and all(
            d is None or r is None or d == r
            for d, r in zip(declared[1:], input_shape[1:], strict=True))
        if not compatible:
            raise ValueError(
                f"Input 0 of layer {self.name!r} is incompatible with the layer: expected "
                f"shape={declared}, but received input with shape={input_shape}"
            )

    def _check_input_spec(self, input_shape: Shape) -> None:
        spec = self.input_spec
        if spec is None:
            return
        ndim = len(input_shape)
        if spec.ndim is not None and ndim != spec.ndim:
            raise ValueError(
                f"Input 0 of layer {self.name!r} is incompatible with the layer: expected "
                f"ndim={spec.ndim}, found ndim={ndim}. Full shape received: {input_shape}"
            )
        if spec.min_ndim is not None and ndim < spec.min_ndim:
            raise ValueError(
                f"Input 0 of layer {self.name!r} is incompatible with the layer: expected "
                f"min_ndim={spec.min_ndim}, found ndim={ndim}. "
                f"Full shape received: {input_shape}"
            )
        for axis, size in spec.axes.items():
            received = input_shape[axis]
            if received is not None and received != size:
                raise ValueError(
                    f"Input 0 of layer {self.name!r} is incompatible with the layer: expected "
                    f"axis {axis} of input shape to have value {size}, but received input "
                    f"with shape {input_shape}"
                )

    def __call__(self, inputs: Any, training: bool = False, **kwargs: Any) -> Any:
        if isinstance(inputs, SymbolicTensor):
            return self._call_symbolic(inputs)
        if not isinstance(inputs, torch.Tensor):
            inputs = torch.as_tensor(np.asarray(inputs))
            if inputs.is_floating_point():
                inputs = inputs.float()
        self._maybe_build(tuple(inputs.shape))
        return self.call(inputs, training=training, **kwargs)

    def _call_symbolic(self, inputs: SymbolicTensor) -> SymbolicTensor:
        """Build from the symbolic shape and infer the output shape with a one-sample run."""
        self._maybe_build(inputs.shape)
        output_shape = self.compute_output_shape(inputs.shape, inputs.dtype)
        self.output_shape = output_shape
        return SymbolicTensor(output_shape, layer=self, inbound=inputs)

    def compute_output_shape(self, input_shape: Shape,
                             dtype: torch.dtype = torch.float32) -> Shape:
        """Output shape, found by running the layer on one sample of zeros (None dims -> 1)."""
        dims = [1 if d is None else d for d in input_shape[1:]]
        device = next((p.device for p in self.parameters()), torch.device("cpu"))
        dummy = torch.zeros((1, *dims), dtype=dtype, device=device)
        with torch.no_grad():
            out = self.call(dummy, training=False)
        return (None, *out.shape[1:])

    # -- configuration ------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"name": self.name, "trainable": self._trainable}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


class LayerList(torch.nn.ModuleList):
    """A ``torch.nn.ModuleList`` that holds only layers (a model's chain).

    The same container at run time; for the type checker, iterating and indexing give
    ``Layer`` rather than ``Module`` (torch's ``ModuleList`` is not generic).
    """

    if TYPE_CHECKING:
        def __iter__(self) -> Iterator[Layer]: ...

        @overload
        def __getitem__(self, idx: slice) -> LayerList: ...

        @overload
        def __getitem__(self, idx: int) -> Layer: ...

        def __getitem__(self, idx: int | slice) -> Layer | LayerList: ...


class InputLayer(Layer):
    """The layer behind ``Input``: no weights, passes its input through."""

    def __init__(self, input_shape: Sequence[int | None] | None = None, *,
                 batch_input_shape: Sequence[int | None] | None = None,
                 name: str | None = None, dtype: Any = None, **kwargs: Any) -> None:
        if input_shape is None and batch_input_shape is None:
            raise ValueError(
                "Input needs a shape (without the batch axis). Received: shape=None")
        super().__init__(name=name or unique_name("input_layer"), input_shape=input_shape,
                         batch_input_shape=batch_input_shape, **kwargs)
        self.dtype = _resolve_dtype(dtype)
        shape = self._batch_input_shape
        assert shape is not None  # Layer.__init__ set it from one of the two shapes checked above
        self.built = True
        self.input_shape = shape
        self.output_shape = shape
        self.output = SymbolicTensor(shape, layer=self, inbound=None, dtype=self.dtype)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        return inputs

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["dtype"] = str(self.dtype).replace("torch.", "")
        return config


def _resolve_dtype(dtype: Any) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "float64": torch.float64, "int32": torch.int64,
             "int64": torch.int64}
    if str(dtype) not in names:
        raise ValueError(f"dtype must be one of {sorted(names)}. Received: dtype={dtype!r}")
    return names[str(dtype)]


def Input(shape: Sequence[int | None] | None = None, batch_size: int | None = None,  # noqa: N802
          name: str | None = None, dtype: Any = None,
          batch_shape: Sequence[int | None] | None = None) -> SymbolicTensor:
    """A symbolic input of ``shape`` (without the batch axis), as ``keras.Input``."""
    if batch_shape is not None:
        layer = InputLayer(batch_input_shape=batch_shape, name=name, dtype=dtype)
    else:
        layer = InputLayer(input_shape=shape, name=name, dtype=dtype)
    return layer.output
