"""Image augmentation layers (channels-last), active only when ``training=True``.

At inference they return their input unchanged, so a model that augments while fitting
predicts on clean images. Random parameters are drawn per image on the CPU (from the layer's
own generator when ``seed`` is given, else torch's global one) and applied on the images'
device with one ``affine_grid``/``grid_sample`` call per batch.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .base import InputSpec, Layer, Shape

# Keras fill_mode -> grid_sample padding_mode ("constant" fills with fill_value).
_FILL_MODES = {"reflect": "reflection", "nearest": "border", "constant": "zeros"}
_INTERPOLATIONS = ("bilinear", "nearest")


def _factor_range(layer: str, name: str, factor: Any, *, limit: float | None = None
                  ) -> tuple[float, float]:
    """``f`` -> ``(-f, f)``; ``(lower, upper)`` kept; checks bounds, names the argument."""
    try:
        if isinstance(factor, (int, float)):
            lower, upper = -abs(float(factor)), abs(float(factor))
        else:
            lower, upper = (float(v) for v in factor)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"Layer {layer!r}: {name} must be a float or a (lower, upper) pair. "
            f"Received: {name}={factor!r}"
        ) from exc
    if lower > upper or (limit is not None and (abs(lower) > limit or abs(upper) > limit)):
        bound = f" with values in [-{limit}, {limit}]" if limit is not None else ""
        raise ValueError(
            f"Layer {layer!r}: {name} must be a float or an ordered (lower, upper) "
            f"pair{bound}. Received: {name}={factor!r}"
        )
    return lower, upper


class _RandomImageLayer(Layer):
    """Shared seeding, fill mode and the affine warp."""

    def __init__(self, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: int | None = None, fill_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if fill_mode not in _FILL_MODES:
            raise ValueError(
                f"Layer {self.name!r}: fill_mode must be one of {sorted(_FILL_MODES)}. "
                f"Received: fill_mode={fill_mode!r}"
            )
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"Layer {self.name!r}: interpolation must be one of {list(_INTERPOLATIONS)}. "
                f"Received: interpolation={interpolation!r}"
            )
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = float(fill_value)
        self.seed = seed
        self._generator = None if seed is None else torch.Generator().manual_seed(seed)

    def build(self, input_shape: Shape) -> None:
        self.input_spec = InputSpec(ndim=4)

    def _uniform(self, batch: int, bounds: tuple[float, float]) -> torch.Tensor:
        """``batch`` draws from U(lower, upper), on the CPU."""
        lower, upper = bounds
        return torch.rand(batch, generator=self._generator) * (upper - lower) + lower

    def _warp(self, images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Sample ``images`` (b, h, w, c) at ``theta`` (b, 2, 3) applied to output coords."""
        x = images.permute(0, 3, 1, 2)  # (batch, h, w, c) -> (batch, c, h, w)
        theta = theta.to(device=x.device, dtype=x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode=self.interpolation,
                            padding_mode=_FILL_MODES[self.fill_mode], align_corners=False)
        if self.fill_mode == "constant" and self.fill_value != 0.0:
            inside = F.grid_sample(torch.ones_like(x[:, :1]), grid, mode="nearest",
                                   padding_mode="zeros", align_corners=False)
            out = out + (1.0 - inside) * self.fill_value
        return out.permute(0, 2, 3, 1)  # -> (batch, h, w, c)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if not training:
            return inputs
        return self._warp(inputs, self._theta(inputs.shape[0], inputs.shape[1],
                                              inputs.shape[2]))

    def _theta(self, batch: int, height: int, width: int) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "fill_mode": self.fill_mode,
                "interpolation": self.interpolation, "seed": self.seed,
                "fill_value": self.fill_value}


class RandomFlip(Layer):
    """Flips each image left-right and/or up-down with probability 1/2 while training."""

    _MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode: str = "horizontal_and_vertical", seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in self._MODES:
            raise ValueError(
                f"Layer {self.name!r}: mode must be one of {list(self._MODES)}. "
                f"Received: mode={mode!r}"
            )
        self.mode = mode
        self.seed = seed
        self._generator = None if seed is None else torch.Generator().manual_seed(seed)

    def build(self, input_shape: Shape) -> None:
        self.input_spec = InputSpec(ndim=4)

    def _maybe_flip(self, images: torch.Tensor, axis: int) -> torch.Tensor:
        flip = torch.rand(images.shape[0], generator=self._generator) < 0.5
        flip = flip.to(images.device).view(-1, 1, 1, 1)  # (batch, 1, 1, 1)
        return torch.where(flip, images.flip(axis), images)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        if not training:
            return inputs
        outputs = inputs
        if self.mode in ("horizontal", "horizontal_and_vertical"):
            outputs = self._maybe_flip(outputs, axis=2)  # width axis
        if self.mode in ("vertical", "horizontal_and_vertical"):
            outputs = self._maybe_flip(outputs, axis=1)  # height axis
        return outputs

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode, "seed": self.seed}


class RandomTranslation(_RandomImageLayer):
    """Shifts each image by a random fraction of its height and width.

    ``height_factor=0.2`` shifts by up to 20 % of the height, up or down.
    """

    def __init__(self, height_factor: Any, width_factor: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.height_factor = height_factor
        self.width_factor = width_factor
        self._height_range = _factor_range(self.name, "height_factor", height_factor, limit=1.0)
        self._width_range = _factor_range(self.name, "width_factor", width_factor, limit=1.0)

    def _theta(self, batch: int, height: int, width: int) -> torch.Tensor:
        # A shift by a fraction s of the size is 2 s in normalised [-1, 1] coordinates;
        # the output pixel at p reads the input at p - shift.
        dy = self._uniform(batch, self._height_range) * 2.0
        dx = self._uniform(batch, self._width_range) * 2.0
        theta = torch.zeros(batch, 2, 3)
        theta[:, 0, 0] = 1.0
        theta[:, 1, 1] = 1.0
        theta[:, 0, 2] = -dx
        theta[:, 1, 2] = -dy
        return theta

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor}


class RandomRotation(_RandomImageLayer):
    """Rotates each image by a random angle: ``factor`` is a fraction of a full turn
    (``0.1`` -> up to ±36°)."""

    def __init__(self, factor: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor
        self._range = _factor_range(self.name, "factor", factor)

    def _theta(self, batch: int, height: int, width: int) -> torch.Tensor:
        angle = self._uniform(batch, self._range) * 2.0 * math.pi
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.zeros(batch, 2, 3)
        # Rotation in pixel units, expressed in normalised coordinates (non-square images).
        theta[:, 0, 0] = cos
        theta[:, 0, 1] = -sin * height / width
        theta[:, 1, 0] = sin * width / height
        theta[:, 1, 1] = cos
        return theta

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}


class RandomZoom(_RandomImageLayer):
    """Zooms each image by a random amount: positive factors zoom out, negative ones in
    (Keras's convention); ``width_factor=None`` keeps the aspect ratio."""

    def __init__(self, height_factor: Any, width_factor: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.height_factor = height_factor
        self.width_factor = width_factor
        self._height_range = _factor_range(self.name, "height_factor", height_factor)
        self._width_range = (None if width_factor is None
                             else _factor_range(self.name, "width_factor", width_factor))
        for name, bounds in (("height_factor", self._height_range),
                             ("width_factor", self._width_range)):
            if bounds is not None and bounds[0] <= -1.0:
                raise ValueError(
                    f"Layer {self.name!r}: {name} must be > -1. "
                    f"Received: {name}={getattr(self, name)!r}"
                )

    def _theta(self, batch: int, height: int, width: int) -> torch.Tensor:
        zoom_h = self._uniform(batch, self._height_range)
        zoom_w = zoom_h if self._width_range is None else self._uniform(batch, self._width_range)
        theta = torch.zeros(batch, 2, 3)
        theta[:, 0, 0] = 1.0 + zoom_w  # > 1 reads a larger area: the image shrinks
        theta[:, 1, 1] = 1.0 + zoom_h
        return theta

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor}
