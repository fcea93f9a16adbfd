"""Model versions: the registry of trained models and which one is active. Keyword-only;
each takes a session. :func:`register_model` and :func:`activate_model` commit (the switch
of the active model is its own transaction; see the package docstring).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .engine import begin_write, is_postgresql
from .models import ActiveModel, ModelVersion, utcnow


class NotFoundError(LookupError):
    """A row named by the caller does not exist (the HTTP layer answers 404)."""


class VersionExistsError(RuntimeError):
    """A model version of this name is already registered."""


def active_version(session: Session) -> str | None:
    """The active model version (a primary-key lookup: cheap enough to poll)."""
    return session.scalar(select(ActiveModel.version).where(ActiveModel.id == 1))


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


def register_model(
    session: Session,
    *,
    version: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    n_users: int,
    n_items: int,
    n_ratings: int,
    training_seconds: float,
    activate: bool = False,
) -> ModelVersion:
    """Record a model trained outside a job (published), active if ``activate``; commits.

    One transaction: the row and the active version change together. Raises
    :class:`VersionExistsError` naming the version when it is already registered.
    """
    begin_write(session)
    exists = VersionExistsError(
        f"model version {version!r} already exists. Received: version={version!r}"
    )
    if session.get(ModelVersion, version) is not None:
        session.rollback()
        raise exists
    now = utcnow()
    model = ModelVersion(
        version=version,
        job_id=None,
        params=dict(params),
        metrics=dict(metrics),
        n_users=n_users,
        n_items=n_items,
        n_ratings=n_ratings,
        training_seconds=training_seconds,
        created_at=now,
    )
    session.add(model)
    try:
        session.flush()
    except IntegrityError as exc:  # registered by another process in between
        session.rollback()
        raise exists from exc
    if activate:
        set_active(session, version=version, now=now)
    session.commit()
    return model


def activate_model(session: Session, *, version: str) -> None:
    """Make ``version`` the active model (roll forward or back); commits.

    Raises :class:`NotFoundError` naming the version when there is no such model.
    """
    begin_write(session)
    if session.get(ModelVersion, version) is None:
        session.rollback()
        raise NotFoundError(f"no model version {version!r}. Received: version={version!r}")
    set_active(session, version=version, now=utcnow())
    session.commit()


def set_active(session: Session, *, version: str, now: datetime) -> None:
    dialect_insert = postgresql.insert if is_postgresql(session) else sqlite.insert
    stmt = dialect_insert(ActiveModel).values(id=1, version=version, activated_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[ActiveModel.id],
        set_={"version": stmt.excluded.version, "activated_at": stmt.excluded.activated_at},
    )
    session.execute(stmt)


def new_version_name(job_id: int | None = None) -> str:
    """A sortable, unique version name: ``20260101T120000Z-j7`` (UTC time, job id)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{stamp}-j{job_id}" if job_id is not None else f"{stamp}-m{time.time_ns() % 10**6}"
