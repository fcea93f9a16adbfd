"""Per-app runtime state: engine, sessions, model holder, popular cache, worker, metrics."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from recommender import store

from .jobs import JobWorker
from .metrics import ServiceMetrics
from .serving import ModelHolder, PopularItems
from .settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    metrics: ServiceMetrics
    models: ModelHolder
    popular: PopularItems
    worker: JobWorker | None

    @classmethod
    def build(cls, settings: Settings, metrics: ServiceMetrics) -> Runtime:
        engine = store.make_engine(
            settings.database_url,
            busy_timeout_s=settings.db_timeout_s,
            pool_size=settings.db_pool_size,
        )
        sessions = store.make_session_factory(engine)
        models = ModelHolder(
            sessions,
            settings.model_dir,
            poll_interval_s=settings.model_poll_interval_s,
            metrics=metrics,
        )
        popular = PopularItems(
            like_threshold=settings.like_threshold, ttl_s=settings.popular_cache_s
        )
        worker = None
        if settings.run_worker:
            worker = JobWorker(
                sessions,
                settings,
                metrics=metrics,
                on_model_ready=lambda _version: models.refresh(force=True),
            )
        return cls(settings, engine, sessions, metrics, models, popular, worker)

    def start(self) -> None:
        """Fail jobs orphaned by a dead process, load the active model, start background loops.

        A database that is down at start-up is not fatal: /readyz reports it and the loops
        retry.
        """
        try:
            with self.sessions() as session:
                stale = store.fail_stale_jobs(
                    session, stale_after=timedelta(seconds=self.settings.job_stale_after_s)
                )
            if stale:
                log.warning("marked stale running jobs failed: %s", stale)
            self.models.refresh()
        except Exception as exc:  # noqa: BLE001
            log.error("start-up checks failed (database unreachable?): %s", exc)
        self.models.start()
        if self.worker is not None:
            self.worker.start()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.models.stop()
        self.engine.dispose()
