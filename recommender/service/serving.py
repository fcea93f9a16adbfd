"""What the request path needs: the active model (hot-swapped), the popular fallback, and the
one function that turns a user's current ratings into recommendations."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from recommender import store

from .metrics import ServiceMetrics

log = logging.getLogger(__name__)

# After a failed load, wait this long before trying the same version again.
RETRY_FAILED_LOAD_S = 30.0


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to serve, with the version it came from."""

    version: str
    model: Any  # recommender.rbm.RBMRecommender
    metrics: dict[str, float] = field(default_factory=dict)


def load_artifact(directory: Path) -> Any:
    """Load an RBM artifact for CPU serving."""
    from recommender.rbm import RBMRecommender

    return RBMRecommender.load(directory, device="cpu")


class ModelHolder:
    """Holds the model this process serves and follows the active-version row.

    ``refresh()`` reads the active version (one primary-key lookup) and, when it changed,
    loads the new artifact off the request path and swaps one reference. A background thread
    calls it every ``poll_interval_s``, so every serving process, on any host sharing the
    database and the model directory, follows an activation within that delay. A load that
    fails keeps the previous model serving.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        model_dir: Path,
        *,
        poll_interval_s: float = 2.0,
        metrics: ServiceMetrics | None = None,
        loader: Callable[[Path], Any] = load_artifact,
    ) -> None:
        self._sessions = session_factory
        self.model_dir = Path(model_dir)
        self.poll_interval_s = poll_interval_s
        self._metrics = metrics
        self._loader = loader
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()  # one load at a time
        self._failed: dict[str, float] = {}  # version -> monotonic time of the failed load
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> LoadedModel | None:
        """The model to serve now (``None`` before any model exists)."""
        return self._current

    def load(self, version: str) -> LoadedModel:
        """Load ``version`` from the model directory (raises on a missing or broken artifact)."""
        with self._sessions() as session:
            row = store.get_model(session, version=version)
            metrics = dict(row.metrics) if row is not None else {}
        path = self.model_dir / version
        if not path.exists():
            raise FileNotFoundError(f"model artifact missing. Received: path={str(path)!r}")
        model = self._loader(path)
        return LoadedModel(version=version, model=model, metrics=metrics)

    def install(self, loaded: LoadedModel) -> None:
        """Serve ``loaded`` from now on."""
        self._current = loaded
        self._failed.pop(loaded.version, None)
        if self._metrics is not None:
            self._metrics.set_active_model(loaded.version, loaded.metrics)
        log.info("serving model %s", loaded.version)

    def refresh(self, *, force: bool = False) -> LoadedModel | None:
        """Follow the active-version row; returns the model served afterwards."""
        with self._sessions() as session:
            version = store.active_version(session)
        current = self._current
        if version is None or (current is not None and current.version == version):
            return current
        with self._lock:
            current = self._current
            if current is not None and current.version == version:
                return current
            failed_at = self._failed.get(version)
            if not force and failed_at is not None:
                if time.monotonic() - failed_at < RETRY_FAILED_LOAD_S:
                    return current
            try:
                loaded = self.load(version)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the old model
                self._failed[version] = time.monotonic()
                self.last_error = f"loading model {version} failed: {type(exc).__name__}: {exc}"
                log.error("%s; still serving %s", self.last_error, current and current.version)
                if self._metrics is not None:
                    self._metrics.model_loads.labels(outcome="failed").inc()
                return current
            if self._metrics is not None:
                self._metrics.model_loads.labels(outcome="loaded").inc()
            self.install(loaded)
            return loaded

    def start(self) -> None:
        """Poll the active-version row in a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="model-holder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - database down: try again next tick
                log.warning("checking the active model version failed: %s", exc)


class PopularItems:
    """The most-liked items, cached for ``ttl_s`` seconds per process."""

    # How many popular items to cache: enough to fill k after removing a user's rated items.
    CACHED = 1000

    def __init__(self, *, like_threshold: float, ttl_s: float) -> None:
        self.like_threshold = like_threshold
        self.ttl_s = ttl_s
        self._cached: list[tuple[str, float]] = []
        self._expires = 0.0
        self._lock = threading.Lock()

    def top(self, session: Session, *, k: int, exclude: Mapping[str, Any] | None = None) -> list:
        """The ``k`` most liked items not in ``exclude``, as ``(item_id, likes)``."""
        items = self._get(session)
        exclude = exclude or {}
        picked = [(item, score) for item, score in items if item not in exclude][:k]
        if len(picked) < k and len(items) >= self.CACHED:
            # A user who rated most of the cached top items: ask the database directly.
            more = store.popular_items(
                session, like_threshold=self.like_threshold, limit=k + len(exclude)
            )
            picked = [(item, score) for item, score in more if item not in exclude][:k]
        return picked

    def invalidate(self) -> None:
        self._expires = 0.0

    def _get(self, session: Session) -> list[tuple[str, float]]:
        now = time.monotonic()
        if now < self._expires:
            return self._cached
        with self._lock:
            if time.monotonic() >= self._expires:
                self._cached = store.popular_items(
                    session, like_threshold=self.like_threshold, limit=self.CACHED
                )
                self._expires = time.monotonic() + self.ttl_s
        return self._cached


@dataclass(frozen=True)
class Recommendation:
    strategy: Literal["rbm", "popular"]
    model_version: str | None
    items: list[tuple[str, float]]


def recommend(
    session: Session,
    *,
    ratings: Mapping[str, float],
    k: int,
    holder: ModelHolder,
    popular: PopularItems,
) -> Recommendation:
    """Recommendations from a user's current ratings (fold-in), never an item they rated.

    Falls back to the most popular items for a user with no ratings, or before any model.
    """
    loaded = holder.current
    if loaded is None or not ratings:
        return Recommendation(
            strategy="popular",
            model_version=loaded.version if loaded else None,
            items=popular.top(session, k=k, exclude=ratings),
        )
    (items,) = loaded.model.recommend([ratings], k=k)
    items = [(item, float(score)) for item, score in items if item not in ratings]
    return Recommendation(strategy="rbm", model_version=loaded.version, items=items)
