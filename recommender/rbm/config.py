"""RBM hyper-parameters, validated on construction. The defaults and the measurements behind
them are in docs/rbm.md.

:class:`RBMConfig` is a frozen pydantic model: the same model validates the Python API,
``recommender train -p KEY=VALUE``, a saved ``model.json`` and the ``config`` of
``POST /v1/admin/retrain`` (whose OpenAPI schema is :meth:`RBMConfig.model_json_schema`).
A bad value raises :class:`RBMConfigError`, a ``ValueError`` that names each bad field.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)


class RBMConfigError(ValueError):
    """Bad RBM hyper-parameters. ``errors``: ``(field, value, message)`` per bad field, the
    field as ``RBMConfig`` names it (e.g. ``cd_k_schedule``), not guessed from the text."""

    def __init__(self, errors: list[tuple[str, Any, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(message for _, _, message in errors))


def _number(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, int | float)


def _positive_int(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        name = info.field_name
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    return value


def _positive_number(value: Any, info: ValidationInfo) -> Any:
    if not _number(value) or not math.isfinite(value) or value <= 0:
        name = info.field_name
        raise ValueError(f"{name} must be a finite number > 0. Received: {name}={value!r}")
    return value


def _non_negative_number(value: Any, info: ValidationInfo) -> Any:
    if not _number(value) or not math.isfinite(value) or value < 0:
        name = info.field_name
        raise ValueError(f"{name} must be a finite number >= 0. Received: {name}={value!r}")
    return value


def _unit_interval(value: Any, info: ValidationInfo) -> Any:  # [0, 1)
    if not _number(value) or not 0 <= value < 1:
        name = info.field_name
        raise ValueError(f"{name} must be in [0, 1). Received: {name}={value!r}")
    return value


def _finite(value: Any, info: ValidationInfo) -> Any:
    if not _number(value) or not math.isfinite(value):
        name = info.field_name
        raise ValueError(f"{name} must be a finite number. Received: {name}={value!r}")
    return value


def _schedule(value: Any) -> tuple[tuple[int, int], ...]:
    def whole(x: Any) -> bool:  # 3 or 3.0 (JSON), not True, 2.5, inf or "3"
        return _number(x) and math.isfinite(x) and float(x).is_integer()

    if not isinstance(value, list | tuple):
        raise ValueError(f"cd_k_schedule must be a list of (start_epoch, k) pairs. "
                         f"Received: cd_k_schedule={value!r}")
    for pair in value:
        if (not isinstance(pair, list | tuple) or len(pair) != 2
                or not all(whole(x) for x in pair) or pair[0] < 0 or pair[1] < 1):
            raise ValueError(f"cd_k_schedule entries must be (start_epoch >= 0, k >= 1) "
                             f"integer pairs. Received: cd_k_schedule={value!r}")
    return tuple(sorted((int(start), int(k)) for start, k in value))


# The checks run before pydantic's own (BeforeValidator), so their messages are the ones
# raised and bools/strings are never coerced to numbers; the Field bounds are what the JSON
# schema (and so /docs) shows.
PositiveInt = Annotated[int, Field(ge=1), BeforeValidator(_positive_int)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False),
                          BeforeValidator(_positive_number)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False),
                             BeforeValidator(_non_negative_number)]
UnitFloat = Annotated[float, Field(ge=0, lt=1), BeforeValidator(_unit_interval)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False), BeforeValidator(_finite)]


class RBMConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=False,
                              title="RBMConfig")

    # Engagement hidden units: their weights are tied across the liked and disliked states,
    # so they see which items a user rated; trained by the joint CD-k on the ternary units.
    n_hidden: PositiveInt = 200
    # Preference hidden units: free weights per state; trained by the conditional CD of the
    # textbook like/dislike RBM (unrated items masked out). 0 disables the group.
    n_preference_hidden: Annotated[int, Field(ge=0)] = 200
    epochs: PositiveInt = 30
    # Users per mini-batch. The statistics are batch means, so the learning rate goes with it
    # (docs/rbm.md).
    batch_size: PositiveInt = 128
    # Large data trains in larger batches: the batch grows to n_users // 64 (an epoch still
    # makes >= 64 updates), up to this many users; the learning rate stays (each update is
    # a batch mean, just less noisy). Set it to batch_size to always use batch_size.
    max_batch_size: PositiveInt = 1024
    learning_rate: PositiveFloat = 0.04
    momentum: UnitFloat = 0.9
    optimizer: str = Field("sgd", description="any name core.optimizers.get() knows")
    weight_decay: NonNegativeFloat = Field(5e-4, description="l2 on the engagement weights")
    # The like/dislike signal is sparse and over-fits long before the engagement signal: a
    # 20x stronger l2 on the preference weights.
    preference_decay: NonNegativeFloat = 1e-2
    cd_k: PositiveInt = 1
    # Optional growth of k over epochs, as (start_epoch, k) pairs, e.g. ((0, 1), (10, 3), (20, 5)).
    cd_k_schedule: Annotated[tuple[tuple[Annotated[int, Field(ge=0)], PositiveInt], ...],
                             BeforeValidator(_schedule)] = Field(
        (), description="(start_epoch >= 0, k >= 1) pairs: k from that 0-based epoch on")
    hidden_dropout: UnitFloat = 0.0
    sample_visible: bool = Field(
        False, description="False: mean-field reconstructions (lower variance)")
    sample_hidden: bool = Field(
        True, description="False: deterministic mean-field CD (used by equality tests)")
    # The rating scale comes before like_threshold: its check reads them.
    rating_min: FiniteFloat = 1.0
    rating_max: FiniteFloat = 5.0
    like_threshold: FiniteFloat = Field(
        4.0, description='rating >= threshold is "liked"; within [rating_min, rating_max]')
    # Ranking shrinks each user's log-odds of rating an item toward the population's, as if the
    # population had `prior_strength` ratings' worth of say: (n * user + c * population) /
    # (n + c) for a user with n known ratings, so new users get the popular items first and
    # their own taste as it shows (measured in docs/rbm.md). 0 ranks by the RBM's p(rated) alone.
    prior_strength: NonNegativeFloat = 5.0
    init_std: NonNegativeFloat = 0.01
    seed: int = 0
    device: str = Field("auto", description="'auto', 'cpu' or 'cuda[:n]'",
                        pattern=r"^(auto|cpu|cuda.*)$")
    # dtype of the training's dense products (the weights stay float32): "auto" = bfloat16 on
    # CPUs where bf16 products measure >= 1.5x float32's rate (AMX), else float32; or
    # "float32"/"bfloat16".
    matmul_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    # Extra: the k of the held-out metric computed each epoch when validation data is given.
    eval_k: PositiveInt = 10
    # Free-form notes kept with the model; not compared by ==.
    extra: dict[str, Any] = Field(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise RBMConfigError(_errors(exc)) from None

    @field_validator("n_preference_hidden", mode="before")
    @classmethod
    def _check_preference_hidden(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("n_preference_hidden must be an integer >= 0. Received: "
                             f"n_preference_hidden={value!r}")
        return value

    @field_validator("rating_max")
    @classmethod
    def _check_scale(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("rating_min")
        if low is not None and not low < value:
            raise ValueError(f"rating_min must be < rating_max. Received: rating_min={low!r}, "
                             f"rating_max={value!r}")
        return value

    @field_validator("like_threshold")
    @classmethod
    def _check_threshold(cls, value: float, info: ValidationInfo) -> float:
        low, high = info.data.get("rating_min"), info.data.get("rating_max")
        if low is not None and high is not None and not low <= value <= high:
            raise ValueError(f"like_threshold must be within [rating_min, rating_max]. "
                             f"Received: like_threshold={value!r}")
        return value

    @field_validator("device", mode="before")
    @classmethod
    def _check_device(cls, value: Any) -> Any:
        if value not in ("auto", "cpu") and not str(value).startswith("cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:n]'. Received: "
                             f"device={value!r}")
        return str(value)

    @field_validator("matmul_dtype", mode="before")
    @classmethod
    def _check_matmul_dtype(cls, value: Any) -> Any:
        if value not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"matmul_dtype must be 'auto', 'float32' or 'bfloat16'. Received: "
                             f"matmul_dtype={value!r}")
        return value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RBMConfig):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[Any, ...]:
        return tuple(v for k, v in self.__dict__.items() if k != "extra")

    def batch_size_for(self, n_users: int) -> int:
        """The mini-batch for ``n_users`` users: ``batch_size``, grown to ``n_users // 64`` up
        to ``max_batch_size``."""
        return max(self.batch_size, min(self.max_batch_size, n_users // 64))

    def k_at(self, epoch: int) -> int:
        """The CD chain length for a 0-based epoch."""
        k = self.cd_k
        for start, value in self.cd_k_schedule:
            if epoch >= start:
                k = value
        return k

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (what model.json holds): the schedule as lists; anything in
        ``extra`` that JSON cannot hold as text."""
        return self.model_dump(mode="json", fallback=repr)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RBMConfig:
        unknown = sorted(set(data) - set(cls.model_fields))
        if unknown:
            raise RBMConfigError([(name, data[name],
                                   f"Unknown RBM hyper-parameter(s): {unknown}. "
                                   f"Valid: {sorted(cls.model_fields)}") for name in unknown[:1]])
        return cls(**data)

    def replace(self, **overrides: Any) -> RBMConfig:
        return RBMConfig.from_dict({**self.to_dict(), **overrides})


def _errors(exc: ValidationError) -> list[tuple[str, Any, str]]:
    out = []
    for error in exc.errors():
        loc = error["loc"]
        name = str(loc[0]) if loc else "config"
        if error["type"] == "extra_forbidden":
            message = (f"Unknown RBM hyper-parameter(s): [{name!r}]. "
                       f"Valid: {sorted(RBMConfig.model_fields)}")
        else:
            message = error["msg"].removeprefix("Value error, ")
            if "Received:" not in message:
                message = f"{name} {message[:1].lower()}{message[1:]}. " \
                          f"Received: {name}={error['input']!r}"
        out.append((name, error["input"], message))
    return out
