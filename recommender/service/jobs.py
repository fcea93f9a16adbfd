"""Training jobs: the worker loop that claims a queued job and runs it.

snapshot ratings -> held-out split -> fit (progress into the job row) -> evaluate -> write
the artifact -> in one transaction: model version row, active version, job succeeded.
Any failure marks the job failed with the error; the previous model keeps serving.
The same loop runs in a thread of the serving process (default) or as ``recommender worker``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from recommender import store

from .errors import FieldError
from .metrics import ServiceMetrics
from .settings import Settings

log = logging.getLogger(__name__)


class JobCancelledError(RuntimeError):
    """The worker is shutting down; the running job is failed so it can be queued again."""


def rbm_config(overrides: Mapping[str, Any], *, settings: Settings) -> Any:
    """An ``RBMConfig`` from JSON overrides; :class:`FieldError` naming a bad field or value.

    The rating scale and like threshold come from the service settings unless overridden.
    """
    from recommender.rbm import RBMConfig

    known = {f.name for f in dataclasses.fields(RBMConfig)}
    service_defaults = {
        "like_threshold": settings.like_threshold,
        "rating_min": settings.rating_min,
        "rating_max": settings.rating_max,
    }
    for name, value in overrides.items():
        if name not in known:
            raise FieldError(
                f"config.{name}",
                value,
                f"config.{name} is not an RBMConfig field (known: {', '.join(sorted(known))}). "
                f"Received: {name}={value!r}",
                kind="extra_forbidden",
            )
    values = {k: v for k, v in service_defaults.items() if k in known} | dict(overrides)
    try:
        return RBMConfig(**values)
    except (TypeError, ValueError) as exc:
        bad = next((name for name in overrides if name in str(exc)), None)
        field = f"config.{bad}" if bad else "config"
        raise FieldError(field, overrides.get(bad) if bad else dict(overrides), str(exc)) from exc


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobWorker:
    """Claims queued jobs (exactly one worker gets each) and runs them one at a time."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        *,
        metrics: ServiceMetrics | None = None,
        on_model_ready: Callable[[str], None] | None = None,
        on_epoch: Callable[[int, int, Mapping[str, float]], None] | None = None,
        worker_id: str | None = None,
    ) -> None:
        self._sessions = session_factory
        self.settings = settings
        self.metrics = metrics
        self.on_model_ready = on_model_ready
        self.on_epoch = on_epoch  # e.g. a terminal progress bar
        self.worker_id = worker_id or worker_identity()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_sweep = 0.0

    # -- loop ---------------------------------------------------------------------------------

    def wake(self) -> None:
        """Look for a job now instead of at the next poll (called after queuing one)."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, name="job-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the loop to end; a running job is failed at its next epoch boundary."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def run_forever(self) -> None:
        log.info("worker %s polling for training jobs", self.worker_id)
        while not self._stop.is_set():
            try:
                self.sweep_stale_jobs(every_s=self.settings.job_heartbeat_s)
                ran = self.run_once()
            except Exception as exc:  # noqa: BLE001 - database down: keep polling
                log.warning("worker loop: %s", exc)
                ran = False
            if not ran:
                self._wake.wait(self.settings.job_poll_interval_s)
                self._wake.clear()

    def sweep_stale_jobs(self, every_s: float = 0.0) -> list[int]:
        """Fail running jobs whose worker stopped beating (at most once per ``every_s``)."""
        now = time.monotonic()
        if now - self._last_sweep < every_s:
            return []
        self._last_sweep = now
        with self._sessions() as session:
            stale = store.fail_stale_jobs(
                session, stale_after=timedelta(seconds=self.settings.job_stale_after_s)
            )
        for job_id in stale:
            log.warning("job %s: worker stopped responding, marked failed", job_id)
        return stale

    def run_once(self) -> bool:
        """Claim and run one queued job; ``False`` when there was none."""
        with self._sessions() as session:
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
                with self._sessions() as session:
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
        from recommender.data import split_per_user
        from recommender.evaluation import evaluate_model
        from recommender.rbm import RBMRecommender

        settings = self.settings
        overrides = {**settings.train_config, **(params.get("config") or {})}
        config = rbm_config(overrides, settings=settings)
        test_fraction = params.get("test_fraction") or settings.test_fraction

        with self._sessions() as session:
            ratings = store.snapshot_ratings(session)
        if len(ratings) < settings.min_ratings_to_train:
            raise ValueError(
                f"not enough ratings to train: need at least {settings.min_ratings_to_train}. "
                f"Received: ratings={len(ratings)}"
            )
        train, test = split_per_user(ratings, test_fraction=test_fraction, seed=config.seed)

        def on_epoch(epoch: int, epochs: int, logs: Mapping[str, float]) -> None:
            if self._stop.is_set():
                raise JobCancelledError("the worker shut down during training; queue it again")
            with self._sessions() as session:
                store.record_progress(session, job_id=job_id, epoch=epoch, epochs=epochs)
            if self.on_epoch is not None:
                self.on_epoch(epoch, epochs, logs)

        with self._sessions() as session:
            store.record_progress(session, job_id=job_id, epoch=0, epochs=config.epochs)
        if settings.train_processes > 1:
            model = train_distributed(train, config, settings.train_processes)
            with self._sessions() as session:
                store.record_progress(session, job_id=job_id, epoch=config.epochs,
                                      epochs=config.epochs)
        else:
            model = RBMRecommender(config)
            model.fit(train, verbose=0, on_epoch=on_epoch)
        metrics = _finite(evaluate_model(model, train, test, k=settings.eval_k))

        version = store.new_version_name(job_id)
        artifact = save_atomically(model, Path(settings.model_dir), version)
        try:
            with self._sessions() as session:
                store.finish_job(
                    session,
                    job_id=job_id,
                    version=version,
                    params={
                        **_json_safe(dataclasses.asdict(config)),
                        "test_fraction": test_fraction,
                    },
                    metrics=metrics,
                    n_users=ratings.n_users,
                    n_items=ratings.n_items,
                    n_ratings=len(ratings),
                    training_seconds=time.monotonic() - started,
                )
        except BaseException:
            shutil.rmtree(artifact, ignore_errors=True)  # no row points at it
            raise
        log.info("job %s: model %s active (%s)", job_id, version, metrics)
        return version

    def _heartbeat(self, job_id: int, done: threading.Event) -> None:
        while not done.wait(self.settings.job_heartbeat_s):
            try:
                with self._sessions() as session:
                    store.heartbeat(session, job_id=job_id)
            except Exception as exc:  # noqa: BLE001
                log.warning("job %s heartbeat: %s", job_id, exc)

    def _count(self, status: str) -> None:
        if self.metrics is not None:
            self.metrics.training_jobs.labels(status=status).inc()


def train_distributed(train: Any, config: Any, processes: int) -> Any:
    """Train through ``torchrun -m recommender train --distributed`` with ``processes`` ranks.

    The training split goes to a temporary CSV (quoted, so any id survives), every
    hyper-parameter is passed as ``-p KEY=JSON``, and the artifact rank 0 writes is loaded.
    """
    import csv

    from recommender.rbm import RBMRecommender

    with tempfile.TemporaryDirectory(prefix="recommender-ddp-") as tmp:
        ratings_path = Path(tmp) / "ratings.csv"
        with ratings_path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["user", "item", "rating", "timestamp"])
            writer.writerows(zip(train.users.tolist(), train.items.tolist(),
                                 train.values.tolist(), train.timestamps.tolist(), strict=True))
        out = Path(tmp) / "model"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={processes}", "-m", "recommender", "train",
                   "--ratings", str(ratings_path), "--out", str(out), "--distributed"]
        for key, value in config.to_dict().items():
            command += ["-p", f"{key}={json.dumps(value)}"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise RuntimeError(f"distributed training failed (exit {result.returncode}): "
                               + " | ".join(tail))
        return RBMRecommender.load(out, device=config.device)


def save_atomically(model: Any, model_dir: Path, version: str) -> Path:
    """Write the artifact to a temporary folder, then rename it to ``model_dir/version``.

    Readers never see a half-written artifact (rename is atomic on one file system).
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir / version
    staging = model_dir / f".{version}.partial-{uuid.uuid4().hex[:8]}"
    try:
        model.save(staging)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    """JSON-safe metrics: numbers only, NaN and infinities dropped."""
    out = {}
    for name, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[name] = number
    return out


def _json_safe(values: Mapping[str, Any]) -> dict[str, Any]:
    """Config values as JSON: anything ``json`` can write (finite) kept, the rest as text."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            value = repr(value)
        out[name] = list(value) if isinstance(value, tuple) else value
    return out
