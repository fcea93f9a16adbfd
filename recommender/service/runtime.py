"""Per-app runtime state: engine, sessions, model holder, caches, the recommendation batcher,
the job worker, metrics."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from recommender import store
from recommender.store.engine import StallGuard

from .batching import MicroBatcher
from .catalogue import Catalogue
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
    # Retired items, metadata filters, the "new" list (polled like the active model).
    catalogue: Catalogue
    recommender: MicroBatcher[RecommendationRequest, Recommendation] | None = None
    # Cuts connections that requests hold past RECOMMENDER_DB_TIMEOUT_S (a stalled database):
    # ``sessions`` and ``readers`` go through it, the training worker does not.
    guard: StallGuard | None = None
    _sweeper: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def build(cls, settings: Settings, metrics: ServiceMetrics) -> Runtime:
        engine = store.make_engine(
            settings.database_url,
            busy_timeout_s=settings.db_timeout_s,
            pool_size=settings.db_pool_size,
            pre_ping=False,  # the guard pings, under its deadline
        )
        guard = StallGuard(engine, timeout_s=settings.db_timeout_s)
        sessions = guard.watch(store.make_session_factory(engine))
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
                store.make_session_factory(engine),  # unguarded: a job reads every rating
                settings,
                metrics=metrics,
                on_model_ready=lambda _version: models.refresh(force=True),
            )
        readers = guard.watch(store.make_reader_factory(engine))
        catalogue = Catalogue(
            sessions,
            poll_interval_s=settings.model_poll_interval_s,
            lists_ttl_s=settings.popular_cache_s,
        )
        return cls(
            settings,
            engine,
            sessions,
            metrics,
            models,
            popular,
            titles,
            worker,
            readers,
            catalogue=catalogue,
            guard=guard,
        )

    def recommend_batch(self, requests: list[RecommendationRequest]) -> list:
        """Answer a batch of recommendation requests (runs on the batcher's thread)."""
        with self.readers() as session:
            results = recommend_many(
                session,
                requests,
                holder=self.models,
                popular=self.popular,
                titles=self.titles,
                catalogue=self.catalogue,
            )
        served = Counter(r.strategy for r in results if isinstance(r, Recommendation))
        for strategy, count in served.items():
            self.metrics.recommendations.labels(strategy=strategy).inc(count)
        return results

    async def recommend(self, request: RecommendationRequest) -> Recommendation:
        """Recommendations for one request, scored together with the others in flight."""
        if self.recommender is None:  # built in start(), inside the event loop's lifetime
            raise RuntimeError("the runtime is not started")
        # Batches run one at a time: behind a batch that stalls on the database, the next
        # would stall as long again. Past this deadline the request gives up (503); its batch
        # goes on and its answer is dropped.
        deadline = self.settings.db_timeout_s + max(1.0, self.settings.db_timeout_s / 2)
        try:
            async with asyncio.timeout(deadline):  # a timer on this task: no extra task
                return await self.recommender.submit(request)
        except TimeoutError:
            raise SQLAlchemyTimeoutError(
                f"no recommendation within {deadline:g} s: the database is stalled or "
                "overloaded (RECOMMENDER_DB_TIMEOUT_S)"
            ) from None

    def sweep_stale_jobs(self) -> list[int]:
        """Fail running jobs whose worker stopped beating (it died), so that a retrain can
        be queued again; returns their ids. Every serving process does this, not only the
        workers: with none running, nobody else would."""
        with store.unit_of_work(self.sessions) as session:
            stale = store.fail_stale_jobs(
                session, stale_after=timedelta(seconds=self.settings.job_stale_after_s)
            )
        if stale:
            log.warning("marked stale running jobs failed (their worker died): %s", stale)
        return stale

    def sweep_interval_s(self) -> float:
        """How often the sweep runs: a dead worker's job is failed at most this long after
        it turned stale (a fifth of RECOMMENDER_JOB_STALE_AFTER_S, between 0.1 s and 10 s)."""
        return min(10.0, max(0.1, self.settings.job_stale_after_s / 5))

    def _sweep_loop(self) -> None:
        while not self._stopping.wait(self.sweep_interval_s()):
            try:
                self.sweep_stale_jobs()
            except Exception as exc:  # noqa: BLE001 - database down: try again next time
                log.warning("sweeping stale jobs failed: %s", exc)

    def start(self) -> None:
        """Fail jobs orphaned by a dead process, load the active model, start background loops.

        A database that is down at start-up is not fatal: /readyz reports it and the loops
        retry.
        """
        try:
            self.sweep_stale_jobs()
            self.models.refresh()
            if self.catalogue is not None:
                self.catalogue.refresh()
        except Exception as exc:  # noqa: BLE001
            log.error("start-up checks failed (database unreachable?): %s", exc)
        self.models.start()
        self._stopping.clear()
        self._sweeper = threading.Thread(
            target=self._sweep_loop, name="stale-job-sweeper", daemon=True
        )
        self._sweeper.start()
        if self.catalogue is not None:
            self.catalogue.start()
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
        self._stopping.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
        if self.catalogue is not None:
            self.catalogue.stop()
        if self.recommender is not None:
            self.recommender.close()
        if self.guard is not None:
            self.guard.close()
        self.engine.dispose()
