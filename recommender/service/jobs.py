"""Training jobs: the worker loop that claims a queued job and runs it, and the checks every
artifact passes before it is served (a retrain's, or one published from an offline run).

A retrain, in two phases when it evaluates (``test_fraction`` > 0, the default):

1. *evaluation fit*: the model is fitted on ``1 - test_fraction`` of each user's ratings and
   scored on the rest; those held-out metrics go on the job and the model version;
2. *final fit*: the same configuration is fitted again on **every** rating, and that model is
   the one saved and served (so every item with a rating can be recommended, and the served
   model sees as much data as ``recommender train`` would).

``test_fraction: 0`` skips phase 1 (no metrics, half the time). Progress over HTTP counts the
epochs of both phases (``epoch`` of ``epochs``, plus the phase's name). A warm start
(``warm_start``) fits from the active model's parameters for a few epochs instead of from a
cold initialisation. Then: write the artifact -> check it (it loads, its item map is sane)
-> in one transaction: model version row, active version, job succeeded. Any failure marks
the job failed with the error; the previous model keeps serving. The same loop runs in a
thread of the serving process (default) or as ``recommender worker``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from recommender import store
from recommender.data import Ratings, split_per_user
from recommender.evaluation import evaluate_model
from recommender.rbm import RBMConfig, RBMRecommender

from .metrics import ServiceMetrics
from .polling import Poller
from .settings import Settings
from .training import (
    WARM_START_EPOCHS,
    check_artifact,
    finite_metrics,
    rbm_config,
    save_atomically,
    train_distributed,
)

log = logging.getLogger(__name__)


class JobCancelledError(RuntimeError):
    """The worker is shutting down; the running job is failed so it can be queued again."""


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobWorker(Poller):
    """Claims queued jobs (exactly one worker gets each) and runs them one at a time.

    Each job step (claim, progress, heartbeat, finish or fail) is its own unit of work
    (:func:`store.unit_of_work`): committed at once, so other processes see it.
    """

    thread_name = "job-worker"
    what = "training jobs"
    poll_at_start = True  # look for a job as soon as the worker starts

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        *,
        metrics: ServiceMetrics | None = None,
        on_model_ready: Callable[[str], object] | None = None,
        on_epoch: Callable[[int, int, Mapping[str, float]], None] | None = None,
        worker_id: str | None = None,
    ) -> None:
        super().__init__()
        self._sessions = session_factory
        self.settings = settings
        self.poll_interval_s = settings.job_poll_interval_s
        self.metrics = metrics
        self.on_model_ready = on_model_ready
        self.on_epoch = on_epoch  # e.g. a terminal progress bar
        self.worker_id = worker_id or worker_identity()
        self._last_sweep = 0.0

    # -- loop (Poller: start(), wake() after queuing a job, stop()) ---------------------------

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the loop to end; a running job is failed at its next epoch boundary."""
        super().stop(timeout)

    def run_forever(self) -> None:
        log.info("worker %s polling for training jobs", self.worker_id)
        super().run_forever()

    def poll(self) -> bool:
        """Sweep stale jobs, then claim and run one; ``True`` when one ran (look again now)."""
        try:
            self.sweep_stale_jobs(every_s=self.settings.job_heartbeat_s)
            return self.run_once()
        except Exception as exc:  # noqa: BLE001 - database down: keep polling
            log.warning("worker loop: %s", exc)
            return False

    def sweep_stale_jobs(self, every_s: float = 0.0) -> list[int]:
        """Fail running jobs whose worker stopped beating (at most once per ``every_s``)."""
        now = time.monotonic()
        if now - self._last_sweep < every_s:
            return []
        self._last_sweep = now
        with store.unit_of_work(self._sessions) as session:
            stale = store.fail_stale_jobs(
                session, stale_after=timedelta(seconds=self.settings.job_stale_after_s)
            )
        for job_id in stale:
            log.warning("job %s: worker stopped responding, marked failed", job_id)
        return stale

    def run_once(self) -> bool:
        """Claim and run one queued job; ``False`` when there was none."""
        with store.unit_of_work(self._sessions) as session:
            job = store.claim_next_job(session, worker_id=self.worker_id)
        if job is None:
            return False
        self.run_job(job.id, dict(job.params or {}))
        return True

    # -- one job ------------------------------------------------------------------------------

    def run_job(self, job_id: int, params: dict[str, Any]) -> str | None:
        """Run a claimed job to the end; returns the new version, or ``None`` if it failed."""
        started = time.monotonic()
        beating = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat,
            args=(job_id, beating),
            name=f"job-{job_id}-heartbeat",
            daemon=True,
        )
        beat.start()
        try:
            version = self._train(job_id, params, started)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the job
            error = f"{type(exc).__name__}: {exc}"
            log.warning("job %s failed: %s", job_id, error)
            try:
                with store.unit_of_work(self._sessions) as session:
                    store.fail_job(session, job_id=job_id, error=error)
            except Exception:  # noqa: BLE001 - the stale-job sweep will fail it later
                log.exception("job %s: could not record the failure", job_id)
            self._count("failed")
            return None
        finally:
            beating.set()
            beat.join(timeout=5)
        self._count("succeeded")
        if self.metrics is not None:
            self.metrics.training_duration.observe(time.monotonic() - started)
        if self.on_model_ready is not None:
            try:
                self.on_model_ready(version)
            except Exception:  # noqa: BLE001 - other processes pick the version up anyway
                log.exception("job %s: loading the new model %s in this process", job_id, version)
        return version

    def _train(self, job_id: int, params: dict[str, Any], started: float) -> str:
        settings = self.settings
        # An activation after this (an operator's rollback while the job trains) stands:
        # finish_job then records the new model without activating it. Read first, before a
        # warm start reads the model it continues.
        with self._sessions() as session:
            active_at_start = store.active_stamp(session)
        warm = bool(params.get("warm_start"))
        initial = None  # (version, artifact folder, model) of a warm start
        if warm:
            initial = self._active_model()
            # A warm start continues the active model: its hyper-parameters (the hidden layout
            # must match to copy its weights), the request's overrides, its own epoch count.
            # The device is this worker's (a GPU-trained model may continue on a CPU).
            base = {k: v for k, v in initial[2].config.to_dict().items() if k != "device"}
            if "device" in settings.train_config:
                base["device"] = settings.train_config["device"]
            overrides = {**base, **(params.get("config") or {}),
                         "epochs": params.get("warm_start_epochs") or WARM_START_EPOCHS}
        else:
            overrides = {**settings.train_config, **(params.get("config") or {})}
        config = rbm_config(overrides, settings=settings)
        test_fraction = params.get("test_fraction")
        if test_fraction is None:  # jobs queued before the route resolved it
            test_fraction = 0.0 if warm else settings.test_fraction

        with self._sessions() as session:
            ratings = store.snapshot_ratings(session)
        if len(ratings) < settings.min_ratings_to_train:
            raise ValueError(
                f"not enough ratings to train: need at least {settings.min_ratings_to_train}. "
                f"Received: ratings={len(ratings)}"
            )
        evaluation = "none (test_fraction=0)"
        train = test = None
        if test_fraction > 0:
            train, test = split_per_user(ratings, test_fraction=test_fraction, seed=config.seed)
            if len(test) == 0:
                train = test = None
                evaluation = (f"skipped: test_fraction={test_fraction:g} holds out no rating "
                              "(every user has too few)")
            elif warm:
                evaluation = ("warm-started on the training split: optimistic, the starting "
                              "model saw the held-out ratings")
            else:
                evaluation = "cold fit on the training split"
        phases = [("evaluation", config.epochs)] if test is not None else []
        phases.append(("final", config.epochs))
        total = sum(epochs for _, epochs in phases)
        params = {**params, "phases": [list(p) for p in phases]}
        with store.unit_of_work(self._sessions) as session:
            store.record_progress(session, job_id=job_id, epoch=0, epochs=total, params=params)

        metrics: dict[str, float] = {}
        if train is not None and test is not None:
            held_out = self._fit(job_id, train, config, initial, done=0, total=total)
            metrics = finite_metrics(evaluate_model(held_out, train, test, k=settings.eval_k))
            del held_out
            with store.unit_of_work(self._sessions) as session:
                store.record_progress(session, job_id=job_id, epoch=config.epochs,
                                      epochs=total, metrics=metrics)
        model = self._fit(job_id, ratings, config, initial, done=total - config.epochs,
                          total=total)

        version = store.new_version_name(job_id)
        artifact = save_atomically(model, Path(settings.model_dir), version)
        try:
            check_artifact(artifact)
            with store.unit_of_work(self._sessions) as session:
                skipped = store.finish_job(
                    session,
                    job_id=job_id,
                    version=version,
                    active_at_start=active_at_start,
                    params={
                        **config.to_dict(),
                        "test_fraction": test_fraction,
                        "evaluation": evaluation,
                        "trained_on": "every rating",
                        "warm_start_from": initial[0] if initial else None,
                    },
                    metrics=metrics,
                    n_users=ratings.n_users,
                    n_items=ratings.n_items,
                    n_ratings=len(ratings),
                    training_seconds=time.monotonic() - started,
                ).params.get("activation")
        except BaseException:
            shutil.rmtree(artifact, ignore_errors=True)  # no row points at it
            raise
        if skipped:
            log.warning("job %s: model %s recorded, not activated: %s", job_id, version, skipped)
        else:
            log.info("job %s: model %s active (%s)", job_id, version, metrics)
        return version

    def _active_model(self) -> tuple[str, Path, RBMRecommender]:
        """The active version, its artifact folder and the model loaded from it (warm start)."""
        with self._sessions() as session:
            version = store.active_version(session)
        if version is None:
            raise ValueError("warm_start needs an active model to start from, and none is "
                             "active: run a cold retrain (or publish a model) first")
        path = Path(self.settings.model_dir) / version
        try:
            return version, path, check_artifact(path)
        except Exception as exc:
            raise ValueError(f"warm_start: the active model {version} cannot be loaded: "
                             f"{exc}") from exc

    def _fit(self, job_id: int, data: Ratings, config: RBMConfig,
             initial: tuple[str, Path, RBMRecommender] | None, *, done: int,
             total: int) -> RBMRecommender:
        """One fit of ``data``, its epochs counted from ``done`` of the job's ``total``."""
        def on_epoch(epoch: int, _epochs: int, logs: Mapping[str, float]) -> None:
            if self._stop.is_set():
                raise JobCancelledError("the worker shut down during training; queue it again")
            with store.unit_of_work(self._sessions) as session:
                store.record_progress(session, job_id=job_id, epoch=done + epoch, epochs=total)
            if self.on_epoch is not None:
                self.on_epoch(done + epoch, total, logs)

        if self.settings.train_processes > 1:
            model = train_distributed(data, config, self.settings.train_processes,
                                      init_from=initial[1] if initial else None)
            with store.unit_of_work(self._sessions) as session:
                store.record_progress(session, job_id=job_id, epoch=done + config.epochs,
                                      epochs=total)
            return model
        model = RBMRecommender(config)
        model.fit(data, verbose=0, on_epoch=on_epoch,
                  initial_model=initial[2] if initial else None)
        return model

    def _heartbeat(self, job_id: int, done: threading.Event) -> None:
        while not done.wait(self.settings.job_heartbeat_s):
            try:
                with store.unit_of_work(self._sessions) as session:
                    store.heartbeat(session, job_id=job_id)
            except Exception as exc:  # noqa: BLE001
                log.warning("job %s heartbeat: %s", job_id, exc)

    def _count(self, status: str) -> None:
        if self.metrics is not None:
            self.metrics.training_jobs.labels(status=status).inc()


