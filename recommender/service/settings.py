"""Service configuration: one pydantic-settings class, environment prefix ``RECOMMENDER_``.

Read through :func:`get_settings` (cached); tests build a :class:`Settings` and hand it to
:func:`recommender.service.create_app`, which keeps it in ``app.state`` for the
``SettingsDep`` dependency (``deps.app_settings``; override that one in a test if need be).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .schemas import MAX_BATCH


class Settings(BaseSettings):
    # Errors never echo the value they refuse: several settings hold secrets (the database
    # URL's password, the admin token, the API keys). Messages that need the value say it.
    model_config = SettingsConfigDict(
        env_prefix="RECOMMENDER_", extra="ignore", hide_input_in_errors=True
    )

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
    # Most ratings (POST /v1/ratings, POST /v1/recommendations) or items (POST /v1/items) in
    # one request; the request schemas refuse more than MAX_BATCH whatever this says.
    max_batch: int = Field(default=MAX_BATCH, ge=1, le=MAX_BATCH)
    # Length of a recommendation list when the request does not say (?k= / "k").
    default_k: int = Field(default=10, ge=1, le=1000)

    # How often every serving process re-reads the active-version row (a PK lookup).
    model_poll_interval_s: float = Field(default=2.0, gt=0)
    # The popular-items fallback is cached this long per process.
    popular_cache_s: float = Field(default=10.0, ge=0)
    # Item titles shown in recommendations are cached this long per process (0: no cache).
    title_cache_s: float = Field(default=10.0, ge=0)
    # Recommendation requests in flight together are scored in one call (one query, one
    # matrix product); at most this many per call.
    recommend_batch_max: int = Field(default=64, ge=1)
    # Where recommendation batches run. On the event loop (False): no thread hop and no GIL
    # hand-offs, measured 10-70 % more requests/s (most at low concurrency), but a read that
    # stalls stalls every route of the process, /healthz included. On a worker thread (True):
    # the event loop keeps serving meanwhile. None picks by database: the loop for SQLite
    # (an embedded file; readers in WAL mode never wait for a lock), a thread for a database
    # behind a network (PostgreSQL).
    recommend_in_thread: bool | None = None

    # After start-up, freeze every object into the permanent GC generation and collect the
    # youngest generation less often: full collections otherwise walk the whole heap (torch,
    # SQLAlchemy, the model) and stall every request in flight (p99 x3-5 under load).
    gc_freeze: bool = True

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
    # Data-parallel ranks for a retrain job. Above 1 the job launches
    # `torchrun --nproc-per-node=N -m recommender train --distributed` (NCCL on GPUs, gloo on
    # CPUs) on the training split and evaluates the artifact it writes; progress then moves
    # from 0 to all epochs when the ranks finish.
    train_processes: int = Field(default=1, ge=1)

    # FastAPI's native OpenTelemetry (traces, metrics and logs to the globally configured
    # providers). Off by default: /metrics already exports Prometheus metrics, and checking
    # the providers costs every request a few environment lookups.
    opentelemetry: bool = False

    # The longest a request waits on the database: SQLite's busy timeout, PostgreSQL's connect
    # timeout (libpq rounds it up to whole seconds, 2 at least), the wait for a pooled
    # connection, and how long a request may hold a connection before it is cut (a stalled
    # server or network): the request then answers 503.
    db_timeout_s: float = Field(default=5.0, gt=0)
    db_pool_size: int = Field(default=10, ge=1)
    # torch intra-op threads in the serving process. Scoring a batch of users is a small
    # matrix product: more threads only add wake-ups and take cores from the event loop (and
    # from the other workers). Training in the in-process worker is slower with 1: run
    # `recommender worker` processes, or raise this, where training speed matters.
    # None leaves torch's default (one thread per core).
    torch_threads: int | None = Field(default=1, ge=1)
    # Threads that score one recommendation batch, each on its own block of the catalogue's
    # items (of the batch's users for the bf16 candidate search; rbm.scoring: the products and
    # element-wise steps release the GIL). On 2 vCPUs with the 10M-shape model at 32 clients,
    # 2 threads on blocks of users served more requests/s than 1 in 8 of 10 paired rounds (up
    # to 37 %), p99 up to 10 ms lower, and 3 did worse than 2; blocks of items then cut the
    # server's CPU per request by another 8-11 % (670-683 -> 595-625 us).
    # None leaves the process's setting (1 unless something set it).
    scoring_threads: int | None = Field(default=2, ge=1)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return []  # unset, or set to "" (compose's ${RECOMMENDER_API_KEYS:-}): no keys
            return [key.strip() for key in value.split(",")]
        return value

    @field_validator("api_keys")
    @classmethod
    def _no_empty_keys(cls, keys: list[str]) -> list[str]:
        # " , " or "k1,,k2" would otherwise leave an empty key (or none at all) and silently
        # switch the checks off. The keys are secrets: the message shows positions only.
        empty = [position for position, key in enumerate(keys) if not key.strip()]
        if empty:
            raise ValueError(
                "RECOMMENDER_API_KEYS must be comma-separated non-empty keys, or unset to turn "
                f"API-key checks off. Received: {len(keys)} entries, empty at positions {empty}"
            )
        return keys

    @model_validator(mode="after")
    def _check_scale(self) -> Self:
        if not self.rating_min < self.rating_max:
            raise ValueError(
                "rating_min must be below rating_max. "
                f"Received: rating_min={self.rating_min}, rating_max={self.rating_max}"
            )
        return self

    def batches_in_thread(self) -> bool:
        """Whether recommendation batches run on a worker thread (resolves ``None``)."""
        if self.recommend_in_thread is not None:
            return self.recommend_in_thread
        return not self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
