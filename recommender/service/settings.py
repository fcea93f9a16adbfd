"""Service configuration: one pydantic-settings class, environment prefix ``RECOMMENDER_``.

Read through :func:`get_settings` (cached); tests build a :class:`Settings` and hand it to
:func:`recommender.service.create_app`, which overrides the dependency.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECOMMENDER_", extra="ignore")

    database_url: str = "sqlite:///./recommender.db"
    model_dir: Path = Path("./models")
    # Bearer token for /v1/admin; unset -> admin routes answer 403 saying how to enable them.
    admin_token: str | None = None
    # When non-empty, every other /v1 route needs one of these in X-API-Key.
    # Environment: comma-separated (RECOMMENDER_API_KEYS=key1,key2).
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)

    rating_min: float = 1.0
    rating_max: float = 5.0
    like_threshold: float = 4.0  # a rating >= this counts as a "like" (training, popularity)

    max_body_bytes: int = Field(default=5 * 1024 * 1024, gt=0)  # 10,000 ratings fit easily
    max_batch: int = Field(default=10_000, gt=0)
    default_k: int = Field(default=10, ge=1, le=1000)

    # How often every serving process re-reads the active-version row (a PK lookup).
    model_poll_interval_s: float = Field(default=2.0, gt=0)
    # The popular-items fallback is cached this long per process.
    popular_cache_s: float = Field(default=10.0, ge=0)

    # Training jobs. run_worker=True runs the job loop in a thread of the serving process;
    # set it False when `recommender worker` processes do the training.
    run_worker: bool = True
    job_poll_interval_s: float = Field(default=1.0, gt=0)
    job_heartbeat_s: float = Field(default=5.0, gt=0)
    # A running job without a heartbeat for this long belongs to a dead worker: failed.
    job_stale_after_s: float = Field(default=30.0, gt=0)
    test_fraction: float = Field(default=0.2, gt=0, lt=1)  # held-out share per user
    eval_k: int = Field(default=10, ge=1)
    # Default RBMConfig overrides for every retrain (a request's overrides win).
    train_config: dict[str, Any] = Field(default_factory=dict)
    min_ratings_to_train: int = Field(default=10, ge=1)

    db_timeout_s: float = Field(default=5.0, gt=0)  # SQLite busy timeout / PG connect timeout
    db_pool_size: int = Field(default=10, ge=1)
    torch_threads: int | None = Field(default=None, ge=1)  # None: leave torch's default

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @model_validator(mode="after")
    def _check_scale(self) -> Self:
        if not self.rating_min < self.rating_max:
            raise ValueError(
                "rating_min must be below rating_max. "
                f"Received: rating_min={self.rating_min}, rating_max={self.rating_max}"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
