"""Per-app runtime state: engine, sessions, model holder, caches, the recommendation batcher,
the job worker, metrics."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from recommender import store

from .batching import MicroBatcher
from .jobs import JobWorker
from .metrics import ServiceMetrics
from .serving import (
    ItemTitles,
    ModelHolder,
    PopularItems,
    Recommendation,
    RecommendationRequest,
    recommend_many,
)
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
    titles: ItemTitles
    worker: JobWorker | None
    # Sessions for the recommendation batches' reads (see ``store.make_reader_factory``).
    readers: sessionmaker[Session]
    recommender: MicroBatcher[RecommendationRequest, Recommendation] | None = None

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
        titles = ItemTitles(ttl_s=settings.title_cache_s)
        worker = None
        if settings.run_worker:
            worker = JobWorker(
                sessions,
                settings,
                metrics=metrics,
                on_model_ready=lambda _version: models.refresh(force=True),
            )
        readers = store.make_reader_factory(engine)
        return cls(settings, engine, sessions, metrics, models, popular, titles, worker, readers)

    def recommend_batch(self, requests: list[RecommendationRequest]) -> list:
        """Answer a batch of recommendation requests (runs on the batcher's thread)."""
        with self.readers() as session:
            results = recommend_many(
                session, requests, holder=self.models, popular=self.popular, titles=self.titles
            )
        served = Counter(r.strategy for r in results if isinstance(r, Recommendation))
        for strategy, count in served.items():
            self.metrics.recommendations.labels(strategy=strategy).inc(count)
        return results

    async def recommend(self, request: RecommendationRequest) -> Recommendation:
        """Recommendations for one request, scored together with the others in flight."""
        if self.recommender is None:  # built in start(), inside the event loop's lifetime
            raise RuntimeError("the runtime is not started")
        return await self.recommender.submit(request)

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
        self.recommender = MicroBatcher(
            self.recommend_batch,
            max_batch=self.settings.recommend_batch_max,
            name="recommend",
            on_batch=self.metrics.recommendation_batch.observe,
            threaded=self.settings.batches_in_thread(),
        )
        if self.worker is not None:
            self.worker.start()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.models.stop()
        if self.recommender is not None:
            self.recommender.close()
        self.engine.dispose()
