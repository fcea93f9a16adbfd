"""Model versions: the registry of trained models and which one is active. Keyword-only;
each takes a session (who commits: the package docstring).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .engine import begin_write, dialect_insert
from .models import ActiveModel, ModelVersion, utcnow


class NotFoundError(LookupError):
    """A row named by the caller does not exist (the HTTP layer answers 404)."""


class VersionExistsError(RuntimeError):
    """A model version of this name is already registered."""


def active_version(session: Session) -> str | None:
    """The active model version (a primary-key lookup: cheap enough to poll)."""
    return session.scalar(select(ActiveModel.version).where(ActiveModel.id == 1))


def active_stamp(session: Session, *, lock: bool = False) -> tuple[str, datetime] | None:
    """``(version, activated_at)`` of the active model (None before any): it changes with
    every activation, the same version activated again included. ``lock``: hold the row
    until the transaction ends (PostgreSQL ``FOR UPDATE``), so that no activation commits
    between this read and the caller's write."""
    query = select(ActiveModel.version, ActiveModel.activated_at).where(ActiveModel.id == 1)
    row = session.execute(query.with_for_update() if lock else query).one_or_none()
    return None if row is None else (row[0], row[1])


def list_models(session: Session) -> list[ModelVersion]:
    """Every model version, newest first."""
    return list(
        session.scalars(
            select(ModelVersion).order_by(
                ModelVersion.created_at.desc(), ModelVersion.version.desc()
            )
        )
    )


def get_model(session: Session, *, version: str) -> ModelVersion | None:
    return session.get(ModelVersion, version)


class VersionFields(TypedDict):
    """What a model version records about its training: the caller's keyword arguments to
    :func:`register_model` and :func:`.jobs.finish_job`."""

    params: Mapping[str, Any]  # the RBMConfig and how it was trained
    metrics: Mapping[str, float]  # held-out metrics ({} without an evaluation)
    n_users: int
    n_items: int
    n_ratings: int
    training_seconds: float


def register_model(
    session: Session,
    *,
    version: str,
    activate: bool = False,
    **fields: Unpack[VersionFields],
) -> ModelVersion:
    """Record a model trained outside a job (published), active if ``activate``.

    Committed as one transaction, the row and the active version change together. Raises
    :class:`VersionExistsError` naming the version when it is already registered.
    """
    begin_write(session)
    if session.get(ModelVersion, version) is not None:
        raise _exists(version)
    return add_version(
        session, version=version, job_id=None, activate=activate, now=utcnow(), **fields
    )


def add_version(
    session: Session,
    *,
    version: str,
    job_id: int | None,
    activate: bool,
    now: datetime,
    **fields: Unpack[VersionFields],
) -> ModelVersion:
    """Insert the model version row (flushed: a duplicate fails here, as
    :class:`VersionExistsError`) and, with ``activate``, make it the active one. The one
    place a :class:`ModelVersion` is built, for a job's model and a published one alike."""
    model = ModelVersion(
        version=version,
        job_id=job_id,
        params=dict(fields["params"]),
        metrics=dict(fields["metrics"]),
        n_users=fields["n_users"],
        n_items=fields["n_items"],
        n_ratings=fields["n_ratings"],
        training_seconds=fields["training_seconds"],
        created_at=now,
    )
    session.add(model)
    try:
        session.flush()
    except IntegrityError as exc:  # registered by another process in between
        raise _exists(version) from exc
    if activate:
        set_active(session, version=version, now=now)
    return model


def _exists(version: str) -> VersionExistsError:
    return VersionExistsError(
        f"model version {version!r} already exists. Received: version={version!r}"
    )


def activate_model(session: Session, *, version: str) -> None:
    """Make ``version`` the active model (roll forward or back).

    Raises :class:`NotFoundError` naming the version when there is no such model.
    """
    begin_write(session)
    if session.get(ModelVersion, version) is None:
        raise NotFoundError(f"no model version {version!r}. Received: version={version!r}")
    set_active(session, version=version, now=utcnow())


def set_active(session: Session, *, version: str, now: datetime) -> None:
    stmt = dialect_insert(session)(ActiveModel).values(id=1, version=version, activated_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[ActiveModel.id],
        set_={"version": stmt.excluded.version, "activated_at": stmt.excluded.activated_at},
    )
    session.execute(stmt)


def new_version_name(job_id: int | None = None) -> str:
    """A sortable, unique version name: ``20260101T120000Z-j7`` (UTC time, job id)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{stamp}-j{job_id}" if job_id is not None else f"{stamp}-m{time.time_ns() % 10**6}"
