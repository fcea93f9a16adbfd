"""Admin: retraining jobs, publishing and activating model versions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema, field_validator, model_validator

from recommender.rbm.config import RBMConfig

from .common import RequestModel, examples

# A held-out share below this keeps no rating of most users (each holds out
# round(n * test_fraction)), and the evaluation would measure nothing.
MIN_TEST_FRACTION = 0.01


class RetrainRequest(RequestModel):
    model_config = examples(
        {"config": {"epochs": 20}, "test_fraction": 0.2},
        {"warm_start": True, "warm_start_epochs": 5},
    )

    # The schema (every hyper-parameter with its bounds and default) is RBMConfig's own; the
    # values stay a plain dict of overrides here (what the job row stores) and are validated
    # by RBMConfig itself when the job is queued (service.training.rbm_config), together with
    # the service's rating scale, so a bad one is a 422 naming config.<field>.
    config: Annotated[
        dict[str, Any],
        WithJsonSchema({**RBMConfig.model_json_schema(), "title": "RBMConfig overrides"}),
    ] = Field(
        default_factory=dict,
        description='RBMConfig overrides, e.g. {"n_hidden": 64, "epochs": 20}. Numbers must '
        "be finite, also inside `extra`. The rating scale and like threshold default to the "
        "service's settings.",
    )
    test_fraction: float | None = Field(
        default=None,
        ge=0,
        lt=1,
        allow_inf_nan=False,
        description="Share of each user's ratings held out to measure the job's metrics (an "
        "evaluation fit on the rest), before the served model is fitted on every rating. "
        f"0: no evaluation (one fit, no metrics); otherwise in [{MIN_TEST_FRACTION}, 1). "
        "Default: RECOMMENDER_TEST_FRACTION, or 0 with warm_start.",
    )
    warm_start: bool = Field(
        default=False,
        description="Start from the active model's parameters (new items start fresh) and "
        "train warm_start_epochs epochs with its hyper-parameters (config overrides apply).",
    )
    warm_start_epochs: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Epochs of a warm start (default 5). Only with warm_start.",
    )

    @field_validator("test_fraction")
    @classmethod
    def _measurable(cls, value: float | None) -> float | None:
        if value is not None and 0 < value < MIN_TEST_FRACTION:
            raise ValueError(
                f"test_fraction must be 0 (no evaluation) or at least {MIN_TEST_FRACTION}"
            )
        return value

    @model_validator(mode="after")
    def _epochs_need_warm_start(self) -> RetrainRequest:
        if self.warm_start_epochs is not None and not self.warm_start:
            raise ValueError(
                "warm_start_epochs is only used with warm_start=true (a cold retrain takes "
                "config.epochs)"
            )
        return self


class PublishRequest(RequestModel):
    model_config = examples({"version": "offline-2026-12-01", "activate": True})

    version: str = Field(
        min_length=1,
        max_length=64,
        description="The artifact's folder in RECOMMENDER_MODEL_DIR (weights.safetensors + "
        "metadata.json, as `recommender train` writes them), which becomes the version name: "
        "letters, digits, '.', '_', '-'.",
    )
    activate: bool = Field(default=False, description="Serve it at once.")


class JobAccepted(BaseModel):
    job_id: int
    status: str
    created: bool = Field(description="false: an open job already existed and is returned.")


class Progress(BaseModel):
    epoch: int = Field(description="Epochs done, over every phase of the job.")
    epochs: int = Field(description="Epochs of all phases (0 until the job starts).")
    phase: Literal["evaluation", "final"] | None = Field(
        default=None,
        description="While running: 'evaluation' (fit on the training split, then scored on "
        "the held-out ratings) or 'final' (fit on every rating: the model served).",
    )


class JobOut(BaseModel):
    job_id: int
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: Progress
    params: dict[str, Any] = Field(
        description="The request (config, test_fraction, warm_start...) and, once running, the "
        "phases the worker resolved: [[name, epochs], ...]."
    )
    metrics: dict[str, float] | None = Field(
        description="Held-out metrics of the evaluation fit (set when it ends, before the final "
        "fit on every rating); {} when the job did not evaluate (test_fraction 0)."
    )
    model_version: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ModelOut(BaseModel):
    version: str
    active: bool
    job_id: int | None
    created_at: datetime
    metrics: dict[str, float]
    params: dict[str, Any]
    n_users: int
    n_items: int
    n_ratings: int
    training_seconds: float


class ModelList(BaseModel):
    active_version: str | None
    models: list[ModelOut]


class Activated(BaseModel):
    active_version: str
