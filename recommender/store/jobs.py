"""Training jobs: the queue, claiming, progress and heartbeats, failing and finishing.
Keyword-only; each takes a session (who commits: the package docstring).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Unpack

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .engine import begin_write, execute_dml
from .models import JobStatus, ModelVersion, TrainingJob, utcnow
from .versions import VersionFields, active_stamp, add_version

# finish_job's default: activate the job's model whatever is active now.
ANY_ACTIVE = object()


def open_job(session: Session, *, kind: str = "retrain") -> TrainingJob | None:
    """The queued or running job of ``kind``, if there is one."""
    return session.scalar(
        select(TrainingJob).where(TrainingJob.kind == kind, TrainingJob.status.in_(JobStatus.OPEN))
    )


def enqueue_job(
    session: Session, *, params: Mapping[str, Any], kind: str = "retrain"
) -> tuple[TrainingJob, bool]:
    """Queue a job, or return the one already queued or running: ``(job, created)``.

    A partial unique index allows one open job per kind, so of two concurrent requests one
    inserts and the other finds that job: on PostgreSQL the loser's insert waits for the
    winner's commit, fails, and its savepoint is rolled back (the caller's transaction goes
    on) before it looks again. On SQLite the write lock taken first serialises them.
    """
    begin_write(session)
    for _ in range(3):
        existing = open_job(session, kind=kind)
        if existing is not None:
            return existing, False
        job = TrainingJob(
            kind=kind, status=JobStatus.QUEUED, params=dict(params), created_at=utcnow()
        )
        try:
            with session.begin_nested():
                session.add(job)
        except IntegrityError:
            continue  # another request queued one in between: return that one
        return job, True
    raise RuntimeError("could not queue a training job: open jobs kept changing")


def get_job(session: Session, *, job_id: int) -> TrainingJob | None:
    return session.get(TrainingJob, job_id, populate_existing=True)


def claim_next_job(session: Session, *, worker_id: str) -> TrainingJob | None:
    """Atomically move the oldest queued job to ``running`` for ``worker_id``.

    PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` so concurrent workers never wait on or
    take the same row. Both dialects then flip the status with a conditional UPDATE
    (``WHERE status = 'queued'``), which only one claimant can win.
    """
    begin_write(session)
    job_id = session.scalar(
        select(TrainingJob.id)
        .where(TrainingJob.status == JobStatus.QUEUED)
        .order_by(TrainingJob.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if job_id is None:
        return None
    now = utcnow()
    claimed = execute_dml(
        session,
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == JobStatus.QUEUED)
        .values(status=JobStatus.RUNNING, worker_id=worker_id, started_at=now, heartbeat_at=now)
        .execution_options(synchronize_session=False),
    )
    if claimed != 1:
        return None
    return session.get(TrainingJob, job_id, populate_existing=True)


def record_progress(
    session: Session,
    *,
    job_id: int,
    epoch: int,
    epochs: int,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
) -> None:
    """Store ``epoch`` of ``epochs`` on a running job (also its heartbeat).

    ``params`` replaces the job's parameters (the worker adds the phases it resolved);
    ``metrics`` stores held-out metrics known before the job ends.
    """
    begin_write(session)
    values: dict[str, Any] = {"epoch": epoch, "epochs": epochs, "heartbeat_at": utcnow()}
    if params is not None:
        values["params"] = dict(params)
    if metrics is not None:
        values["metrics"] = dict(metrics)
    session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == JobStatus.RUNNING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def heartbeat(session: Session, *, job_id: int) -> None:
    """Tell other processes the job's worker is alive."""
    begin_write(session)
    session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == JobStatus.RUNNING)
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def fail_job(session: Session, *, job_id: int, error: str) -> None:
    """Mark a job failed with ``error`` (unless it already finished)."""
    begin_write(session)
    session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status.in_(JobStatus.OPEN))
        .values(status=JobStatus.FAILED, error=error[:4000], finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def fail_stale_jobs(session: Session, *, stale_after: timedelta) -> list[int]:
    """Fail running jobs whose worker stopped sending heartbeats; returns their ids.

    A worker beats at least every few seconds while it runs a job, so a running job without a
    heartbeat for ``stale_after`` belongs to a process that died. One conditional UPDATE, not
    a read then a write (on SQLite that pair fails at once when another connection writes in
    between).
    """
    begin_write(session)
    cutoff = utcnow() - stale_after
    stale = session.scalars(
        update(TrainingJob)
        .where(
            TrainingJob.status == JobStatus.RUNNING,
            (TrainingJob.heartbeat_at.is_(None)) | (TrainingJob.heartbeat_at < cutoff),
        )
        .values(
            status=JobStatus.FAILED,
            error=f"worker stopped responding (no heartbeat for {stale_after.total_seconds():g} s);"
            " the job can be queued again",
            finished_at=utcnow(),
        )
        .returning(TrainingJob.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(stale)


def finish_job(
    session: Session,
    *,
    job_id: int,
    version: str,
    activate: bool = True,
    active_at_start: tuple[str, datetime] | None | object = ANY_ACTIVE,
    **fields: Unpack[VersionFields],
) -> ModelVersion:
    """Record the trained model, make it active and mark the job succeeded.

    Committed as one transaction, serving processes see either the old version with the job
    running, or the new version with the job succeeded; never a half-finished switch. Raises
    ``RuntimeError`` when the job is no longer running; the caller rolls back (the version
    row written here goes with it).

    ``active_at_start``: the :func:`active_stamp` read when the job started. When the active
    model has changed since (an operator rolled back, or activated a published model, while
    the job trained), the model is recorded but not activated: the later, explicit choice
    stands. Its row's ``params["activation"]`` says so.
    """
    begin_write(session)
    now = utcnow()
    if activate and active_at_start is not ANY_ACTIVE:
        current = active_stamp(session, lock=True)
        if current != active_at_start:
            activate = False
            was = active_at_start[0] if isinstance(active_at_start, tuple) else None
            fields = {**fields, "params": {
                **fields["params"],
                "activation": f"skipped: the active model changed while the job trained "
                              f"(from {was!r} to {current and current[0]!r})"}}
    model = add_version(
        session, version=version, job_id=job_id, activate=activate, now=now, **fields
    )
    finished = execute_dml(
        session,
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == JobStatus.RUNNING)
        .values(
            status=JobStatus.SUCCEEDED,
            epoch=TrainingJob.epochs,
            metrics=dict(fields["metrics"]),
            model_version=version,
            finished_at=now,
            heartbeat_at=now,
        )
        .execution_options(synchronize_session=False),
    )
    if finished != 1:
        raise RuntimeError(
            f"job {job_id} is no longer running (marked failed as stale?); "
            f"model {version} was not activated"
        )
    return model
