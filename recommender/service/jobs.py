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

import dataclasses
import json
import logging
import math
import os
import re
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
from .validation import json_problem, text_problem

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
    for name, value in overrides.items():
        # What the job row could not store and give back (PostgreSQL refuses NaN in JSON,
        # SQLite stores it as null; NUL and lone surrogates): 422 before anything is queued.
        found = json_problem(value, f"config.{name}")
        if found is not None:
            field, bad, reason = found
            leaf = field.rsplit(".", 1)[-1]
            raise FieldError(field, bad, f"{field} {reason}. Received: {leaf}={bad!r}")
    values = {k: v for k, v in service_defaults.items() if k in known} | dict(overrides)
    try:
        return RBMConfig(**values)
    except (TypeError, ValueError, OverflowError) as exc:
        bad = next((name for name in overrides if name in str(exc)), None)
        field = f"config.{bad}" if bad else "config"
        raise FieldError(field, overrides.get(bad) if bad else dict(overrides), str(exc)) from exc


# Epochs of a warm-started retrain when the request does not say (see
# benchmarks/warm_start.py: from a model trained on 90 % of MovieLens-100k by time, 5 epochs
# on all of it come within 2 % of a 30-epoch cold retrain).
WARM_START_EPOCHS = 5


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

        settings = self.settings
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
        with self._sessions() as session:
            store.record_progress(session, job_id=job_id, epoch=0, epochs=total, params=params)

        metrics: dict[str, float] = {}
        if test is not None:
            held_out = self._fit(job_id, train, config, initial, done=0, total=total)
            metrics = _finite(evaluate_model(held_out, train, test, k=settings.eval_k))
            del held_out
            with self._sessions() as session:
                store.record_progress(session, job_id=job_id, epoch=config.epochs,
                                      epochs=total, metrics=metrics)
        model = self._fit(job_id, ratings, config, initial, done=total - config.epochs,
                          total=total)

        version = store.new_version_name(job_id)
        artifact = save_atomically(model, Path(settings.model_dir), version)
        try:
            check_artifact(artifact)
            with self._sessions() as session:
                store.finish_job(
                    session,
                    job_id=job_id,
                    version=version,
                    params={
                        **_json_safe(dataclasses.asdict(config)),
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
                )
        except BaseException:
            shutil.rmtree(artifact, ignore_errors=True)  # no row points at it
            raise
        log.info("job %s: model %s active (%s)", job_id, version, metrics)
        return version

    def _active_model(self) -> tuple[str, Path, Any]:
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

    def _fit(self, job_id: int, data: Any, config: Any, initial: tuple | None, *, done: int,
             total: int) -> Any:
        """One fit of ``data``, its epochs counted from ``done`` of the job's ``total``."""
        from recommender.rbm import RBMRecommender

        def on_epoch(epoch: int, _epochs: int, logs: Mapping[str, float]) -> None:
            if self._stop.is_set():
                raise JobCancelledError("the worker shut down during training; queue it again")
            with self._sessions() as session:
                store.record_progress(session, job_id=job_id, epoch=done + epoch, epochs=total)
            if self.on_epoch is not None:
                self.on_epoch(done + epoch, total, logs)

        if self.settings.train_processes > 1:
            model = train_distributed(data, config, self.settings.train_processes,
                                      init_from=initial[1] if initial else None)
            with self._sessions() as session:
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
                with self._sessions() as session:
                    store.heartbeat(session, job_id=job_id)
            except Exception as exc:  # noqa: BLE001
                log.warning("job %s heartbeat: %s", job_id, exc)

    def _count(self, status: str) -> None:
        if self.metrics is not None:
            self.metrics.training_jobs.labels(status=status).inc()


def train_distributed(train: Any, config: Any, processes: int,
                      init_from: Path | None = None) -> Any:
    """Train through ``torchrun -m recommender train --distributed`` with ``processes`` ranks.

    The training split goes to a temporary CSV (quoted, so any id survives), every
    hyper-parameter is passed as ``-p KEY=JSON``, and the artifact rank 0 writes is loaded.
    ``init_from``: a model artifact to warm-start from (``--init-from``).
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
        if init_from is not None:
            command += ["--init-from", str(init_from)]
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


# --------------------------------------------------------------------------------------------
# Artifact checks and publishing a model trained elsewhere
# --------------------------------------------------------------------------------------------

# A published version names its folder in the model directory: letters, digits, ".", "_"
# and "-", starting with a letter or digit (so no "/", no "..", no hidden folder), and fits
# the 64 characters of model_versions.version.
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ARTIFACT_FILES = ("metadata.json", "weights.safetensors")


class VersionExistsError(RuntimeError):
    """A model version with this name is already registered (the HTTP layer answers 409)."""


def check_artifact(directory: Path) -> Any:
    """Load the artifact in ``directory`` for CPU serving and check that it can be served.

    It must load; its item map must be non-empty, with unique ids that the store can hold
    (1-128 characters, no NUL, no lone surrogate); ``W (2 * items, hidden)``,
    ``a (2 * items,)``, ``b (hidden,)`` and the prior ``(items,)`` must agree with the item
    map and the config's hidden layout, and hold finite numbers. Returns the model, warmed by
    one scoring call; raises :class:`ValueError` saying what is wrong. Every retrain's
    artifact and every published one passes here before a version row points at it.
    """
    import torch

    from recommender.rbm import RBMRecommender
    from recommender.store.models import ID_LENGTH

    directory = Path(directory)
    for name in ARTIFACT_FILES:
        file = directory / name
        if file.is_symlink() or not file.is_file():
            raise ValueError(f"the artifact needs {name} as a regular file (not a link). "
                             f"Received: path={str(file)!r}")
    try:
        model = RBMRecommender.load(directory, device="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure to load is the artifact's fault
        raise ValueError(f"the artifact does not load: {type(exc).__name__}: {exc}") from exc
    ids = model.item_ids
    if not ids:
        raise ValueError("the artifact's item map is empty. Received: item_ids=[]")
    for item in ids:
        # Ids the store can hold (a retrain's ids come from it): text of 1-128 characters
        # without NUL or lone surrogates. A "/" is allowed: `recommender import` may have
        # stored such ids, and refusing them here would fail every retrain of that store.
        if not isinstance(item, str):
            problem = "ids must be text"
        elif not 1 <= len(item) <= ID_LENGTH:
            problem = f"ids must be 1-{ID_LENGTH} characters, got {len(item)}"
        else:
            problem = text_problem(item)
        if problem is not None:
            raise ValueError(f"the artifact's item map holds an id the store cannot hold "
                             f"({problem}). Received: item_id={item!r}")
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        duplicate = next(item for item in ids if item in seen or seen.add(item))
        raise ValueError(f"the artifact's item map lists an id twice. Received: "
                         f"item_id={duplicate!r}")
    n_items, cfg = len(ids), model.config
    hidden = cfg.n_hidden + cfg.n_preference_hidden
    expected = {"W": (2 * n_items, hidden), "a": (2 * n_items,), "b": (hidden,)}
    if model.prior is not None:
        expected["prior"] = (n_items,)
    for name, shape in expected.items():
        tensor = getattr(model, name)
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} for {n_items} items and {hidden} "
                             f"hidden units. Received: {name}.shape={tuple(tensor.shape)}")
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name} holds NaN or infinite values")
    model.recommend([{}], k=1)  # builds the serving weights, as a serving process does
    return model


def publish_model(session: Session, *, model_dir: Path, version: str,
                  activate: bool = False) -> tuple[Any, Any]:
    """Register the artifact in ``model_dir/version`` (made by ``recommender train``,
    ``torchrun ... --distributed`` or copied from another deployment) as a model version,
    after :func:`check_artifact`; ``activate`` makes it the served version in the same
    transaction. Returns ``(row, model)``. Commits.

    Raises :class:`FieldError` (field ``version``) for a bad name, a missing folder, a link
    or a bad artifact, and :class:`VersionExistsError` when the version is registered.
    """
    if not isinstance(version, str) or VERSION_PATTERN.fullmatch(version) is None:
        raise FieldError("version", version,
                         "version must be 1-64 letters, digits, '.', '_' or '-', starting with "
                         f"a letter or digit. Received: version={version!r}")
    root = Path(model_dir).resolve()
    path = root / version
    if path.is_symlink() or not path.is_dir():
        raise FieldError("version", version,
                         f"no artifact folder {version!r} in the model directory (copy the "
                         f"folder `recommender train` wrote there first; links are refused). "
                         f"Received: version={version!r}")
    if store.get_model(session, version=version) is not None:
        session.rollback()
        raise VersionExistsError(f"model version {version!r} already exists. "
                                 f"Received: version={version!r}")
    session.rollback()  # end the read before the (possibly slow) load
    try:
        model = check_artifact(path)
    except ValueError as exc:
        raise FieldError("version", version, f"model {version} cannot be served: {exc}") from exc
    training = model.metadata.get("training") or {}
    try:
        row = store.register_model(
            session,
            version=version,
            params={**_json_safe(model.config.to_dict()), "source": "published",
                    "trained_on": "offline (recommender train)",
                    "fingerprint": training.get("fingerprint")},
            metrics=_finite(model.metadata.get("metrics") or {}),
            n_users=int(training.get("n_users") or 0),
            n_items=model.n_items,
            n_ratings=int(training.get("n_ratings") or 0),
            training_seconds=float(training.get("seconds") or 0.0),
            activate=activate,
        )
    except store.VersionExistsError as exc:  # registered between the check and the insert
        raise VersionExistsError(str(exc)) from exc
    return row, model
