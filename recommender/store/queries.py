"""The queries the service and the trainer need. Keyword-only; each takes a session.

Functions never commit: the caller owns the transaction (one request or one job step = one
transaction, so a failure half way writes nothing).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Float,
    String,
    Text,
    bindparam,
    cast,
    delete,
    func,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .engine import begin_write, is_postgresql
from .models import ActiveModel, Item, JobStatus, ModelVersion, Rating, TrainingJob, utcnow


@dataclass(frozen=True, slots=True)
class RatingRow:
    """A rating as written to the store."""

    user_id: str
    item_id: str
    value: float
    timestamp: int


def rating_rows(ratings: Any, start: int = 0, stop: int | None = None) -> list[RatingRow]:
    """Rows ``start:stop`` of a :class:`recommender.data.Ratings` table, ready to upsert."""
    window = slice(start, stop)
    return [
        RatingRow(str(u), str(i), float(v), int(t))
        for u, i, v, t in zip(
            ratings.users[window],
            ratings.items[window],
            ratings.values[window],
            ratings.timestamps[window],
            strict=True,
        )
    ]


@dataclass(frozen=True, slots=True)
class ItemRow:
    """A catalogue entry as written to the store (``None`` leaves nothing unset: see upsert)."""

    item_id: str
    title: str | None = None
    metadata: dict[str, Any] | None = None
    active: bool | None = None  # None: a new item is active, an existing one keeps its state
    created: int | None = None  # unix seconds; None: a new item has none, an existing keeps its


class NotFoundError(LookupError):
    """A row named by the caller does not exist (the HTTP layer answers 404)."""


# --------------------------------------------------------------------------------------------
# Ratings
# --------------------------------------------------------------------------------------------


def upsert_ratings(session: Session, *, ratings: Sequence[RatingRow]) -> int:
    """Insert or update ``ratings`` in one ``INSERT ... ON CONFLICT DO UPDATE`` statement.

    The batch is bound as arrays (PostgreSQL ``unnest``, SQLite ``json_each``), so a batch of
    10,000 is one statement with four parameters, whatever the dialect's parameter limit.
    Within a batch the last rating for a (user, item) wins; rows are written in key order so
    concurrent batches lock rows in the same order (no deadlocks on PostgreSQL).
    Returns the number of distinct (user, item) pairs written.
    """
    latest: dict[tuple[str, str], RatingRow] = {}
    for row in ratings:
        latest[(row.user_id, row.item_id)] = row
    if not latest:
        return 0
    rows = [latest[key] for key in sorted(latest)]
    begin_write(session)
    users = [r.user_id for r in rows]
    items = [r.item_id for r in rows]
    values = [float(r.value) for r in rows]
    stamps = [int(r.timestamp) for r in rows]
    columns = [Rating.user_id, Rating.item_id, Rating.value, Rating.timestamp]

    if is_postgresql(session):
        source = (
            func.unnest(
                _array(users, String),
                _array(items, String),
                _array(values, Float),
                _array(stamps, BigInteger),
            )
            .table_valued("user_id", "item_id", "value", "timestamp")
            .render_derived()
        )
        stmt = postgresql.insert(Rating).from_select(
            columns, select(source.c.user_id, source.c.item_id, source.c.value, source.c.timestamp)
        )
    else:
        payload = _json_rows(users, items, values, stamps)
        source = func.json_each(payload).table_valued("value")
        stmt = sqlite.insert(Rating).from_select(
            columns,
            select(
                func.json_extract(source.c.value, "$[0]"),
                func.json_extract(source.c.value, "$[1]"),
                func.json_extract(source.c.value, "$[2]"),
                func.json_extract(source.c.value, "$[3]"),
            ).where(true()),  # SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT
        )
    stmt = stmt.on_conflict_do_update(
        index_elements=[Rating.user_id, Rating.item_id],
        set_={"value": stmt.excluded.value, "timestamp": stmt.excluded.timestamp},
    )
    session.execute(stmt)
    return len(rows)


def _array(values: list, item_type: type) -> Any:
    return bindparam(None, values, type_=ARRAY(item_type()))


def _json_rows(*columns: list) -> str:
    return json.dumps(list(zip(*columns, strict=True)), allow_nan=False)


def refresh_statistics(session: Session) -> None:
    """Refresh the query planner's statistics (``ANALYZE``) after a bulk load.

    PostgreSQL plans from them: on a freshly loaded table it does not know the primary key
    is selective and reads a batch of users' ratings with a sequential scan (~10x slower).
    Autovacuum catches up eventually; a bulk import should not leave it to chance.
    """
    session.execute(text("ANALYZE"))


def user_ratings(session: Session, *, user_id: str) -> dict[str, float]:
    """All of one user's ratings as ``{item_id: rating}`` (one primary-key range scan)."""
    rows = session.execute(
        select(Rating.item_id, Rating.value).where(Rating.user_id == user_id)
    ).all()
    return {item_id: value for item_id, value in rows}


def ratings_of_users(session: Session, *, user_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """Every rating of each of ``user_ids`` as ``{user_id: {item_id: rating}}``, in one query.

    The serving path's read: one statement for a whole batch of recommendation requests, a
    primary-key range scan per user. The database folds each user's ratings into one JSON
    object (``json_group_object`` on SQLite, ``json_object_agg`` on PostgreSQL) and hands it
    over as text, parsed by orjson: one row per user instead of a row per rating, and no
    per-value conversion in the driver (2-4x faster than either). Ratings are numbers as
    JSON gives them back: an integral rating may come back as an ``int`` (``4`` for
    ``4.0``). Users without ratings are absent from the answer.
    """
    if not user_ids:
        return {}
    dialect = session.get_bind().dialect.name
    rows = session.execute(_ratings_of_users_query(dialect), {"user_ids": list(user_ids)}).all()
    if dialect in FOLDS_JSON:  # one JSON object per user
        return {user_id: orjson.loads(ratings) for user_id, ratings in rows}
    out: dict[str, dict[str, float]] = {}
    for user_id, item_id, value in rows:
        out.setdefault(user_id, {})[item_id] = value
    return out


FOLDS_JSON = ("sqlite", "postgresql")  # dialects that fold a user's ratings into JSON


@functools.cache
def _ratings_of_users_query(dialect: str) -> Any:
    """The statement of :func:`ratings_of_users` for ``dialect``, built once: constructing
    the expression costs more than SQLAlchemy's compiled-cache lookup it then hits."""
    table = Rating.__table__
    wanted = table.c.user_id.in_(bindparam("user_ids", expanding=True))
    if dialect == "sqlite":
        folded = func.json_group_object(table.c.item_id, table.c.value)
    elif dialect == "postgresql":
        folded = cast(func.json_object_agg(table.c.item_id, table.c.value), Text)
    else:  # a row per rating
        return select(table.c.user_id, table.c.item_id, table.c.value).where(wanted)
    return select(table.c.user_id, folded).where(wanted).group_by(table.c.user_id)


def list_user_ratings(
    session: Session, *, user_id: str, limit: int, cursor: str | None = None
) -> tuple[list[Rating], str | None]:
    """One page of a user's ratings in item order, and the cursor of the next page.

    Keyset pagination: the cursor encodes the last item id of the page, so each page is an
    index range scan however deep the client pages, and concurrent writes never shift pages.
    """
    query = select(Rating).where(Rating.user_id == user_id)
    if cursor is not None:
        query = query.where(Rating.item_id > decode_cursor(cursor))
    rows = list(session.scalars(query.order_by(Rating.item_id).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    return page, encode_cursor(page[-1].item_id)


def encode_cursor(item_id: str) -> str:
    return base64.urlsafe_b64encode(item_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The item id inside ``cursor``; ``ValueError`` naming the cursor when it is not one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        item_id = base64.b64decode(padded.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        item_id = None
    # A NUL cannot be in a stored id (PostgreSQL refuses it in text): not a cursor we made.
    if item_id is None or "\x00" in item_id:
        raise ValueError(
            f"cursor is not a cursor this API returned. Received: cursor={cursor!r}"
        ) from None
    return item_id


def delete_user(session: Session, *, user_id: str) -> int:
    """Erase every rating of ``user_id``; returns how many were deleted."""
    begin_write(session)
    result = session.execute(delete(Rating).where(Rating.user_id == user_id))
    return int(result.rowcount or 0)


def count_ratings(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Rating)) or 0)


def popular_items(
    session: Session, *, like_threshold: float, limit: int
) -> list[tuple[str, float]]:
    """Items liked (rating >= ``like_threshold``) by the most users, with that count.

    Ties break by item id so the answer is deterministic.
    """
    likes = func.count().label("likes")
    rows = session.execute(
        select(Rating.item_id, likes)
        .where(Rating.value >= like_threshold)
        .group_by(Rating.item_id)
        .order_by(likes.desc(), Rating.item_id)
        .limit(limit)
    ).all()
    return [(item_id, float(n)) for item_id, n in rows]


def snapshot_ratings(session: Session) -> Any:
    """Every rating as a :class:`recommender.data.Ratings`, read from one consistent snapshot.

    Read as columns, never a Python object per rating (:mod:`recommender.store.bulk`):
    PostgreSQL streams ``COPY (SELECT ...) TO STDOUT``, SQLite is read in chunks. On
    PostgreSQL the read runs under REPEATABLE READ (call this first in a fresh session); on
    SQLite a single statement already sees one snapshot.
    """
    from .bulk import snapshot_columns

    if is_postgresql(session) and not session.in_transaction():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    return snapshot_columns(session)


# --------------------------------------------------------------------------------------------
# Items
# --------------------------------------------------------------------------------------------


def upsert_items(session: Session, *, items: Sequence[ItemRow]) -> int:
    """Insert or update catalogue entries; last entry per id wins.

    Title and metadata are replaced; ``active`` and ``created`` only when the entry gives
    them (a re-sent title does not bring a retired item back). One statement per group of
    entries that set ``active`` the same way (at most three).
    """
    latest = {item.item_id: item for item in items}
    if not latest:
        return 0
    begin_write(session)
    now = utcnow()
    dialect_insert = postgresql.insert if is_postgresql(session) else sqlite.insert
    groups: dict[bool | None, list[dict[str, Any]]] = {}
    for i in (latest[key] for key in sorted(latest)):
        groups.setdefault(i.active, []).append(
            {
                "item_id": i.item_id,
                "title": i.title,
                "metadata": i.metadata,
                "updated_at": now,
                "active": True if i.active is None else i.active,
                "created": i.created,
            }
        )
    for active, rows in groups.items():
        stmt = dialect_insert(Item).values(rows)
        set_ = {
            "title": stmt.excluded.title,
            "metadata": stmt.excluded.metadata,
            "updated_at": stmt.excluded.updated_at,
            "created": func.coalesce(stmt.excluded.created, Item.created),
        }
        if active is not None:
            set_["active"] = stmt.excluded.active
        session.execute(stmt.on_conflict_do_update(index_elements=[Item.item_id], set_=set_))
    return len(latest)


def get_item(session: Session, *, item_id: str) -> Item | None:
    return session.get(Item, item_id)


def item_titles(session: Session, *, item_ids: Iterable[str]) -> dict[str, str]:
    """``{item_id: title}`` for those of ``item_ids`` that have a title."""
    ids = list(item_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Item.item_id, Item.title).where(Item.item_id.in_(ids), Item.title.is_not(None))
    ).all()
    return {item_id: title for item_id, title in rows}


# --------------------------------------------------------------------------------------------
# Training jobs
# --------------------------------------------------------------------------------------------


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
    inserts and the other finds that job. Commits (the insert must be visible to workers).
    """
    for _ in range(3):
        begin_write(session)
        existing = open_job(session, kind=kind)
        if existing is not None:
            session.commit()
            return existing, False
        job = TrainingJob(
            kind=kind, status=JobStatus.QUEUED, params=dict(params), created_at=utcnow()
        )
        session.add(job)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # another request queued one in between: return that one
            continue
        return job, True
    raise RuntimeError("could not queue a training job: open jobs kept changing")


def get_job(session: Session, *, job_id: int) -> TrainingJob | None:
    return session.get(TrainingJob, job_id, populate_existing=True)


def claim_next_job(session: Session, *, worker_id: str) -> TrainingJob | None:
    """Atomically move the oldest queued job to ``running`` for ``worker_id``; commits.

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
        session.commit()
        return None
    now = utcnow()
    result = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == JobStatus.QUEUED)
        .values(status=JobStatus.RUNNING, worker_id=worker_id, started_at=now, heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if result.rowcount != 1:
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
    """Store ``epoch`` of ``epochs`` on a running job (also its heartbeat); commits.

    ``params`` replaces the job's parameters (the worker adds the phases it resolved);
    ``metrics`` stores held-out metrics known before the job ends.
    """
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
    session.commit()


def heartbeat(session: Session, *, job_id: int) -> None:
    """Tell other processes the job's worker is alive; commits."""
    session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == JobStatus.RUNNING)
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()


def fail_job(session: Session, *, job_id: int, error: str) -> None:
    """Mark a job failed with ``error`` (unless it already finished); commits."""
    session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status.in_(JobStatus.OPEN))
        .values(status=JobStatus.FAILED, error=error[:4000], finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()


def fail_stale_jobs(session: Session, *, stale_after: timedelta) -> list[int]:
    """Fail running jobs whose worker stopped sending heartbeats; returns their ids; commits.

    A worker beats at least every few seconds while it runs a job, so a running job without a
    heartbeat for ``stale_after`` belongs to a process that died.
    """
    cutoff = utcnow() - stale_after
    stale = list(
        session.scalars(
            select(TrainingJob.id).where(
                TrainingJob.status == JobStatus.RUNNING,
                (TrainingJob.heartbeat_at.is_(None)) | (TrainingJob.heartbeat_at < cutoff),
            )
        )
    )
    for job_id in stale:
        fail_job(
            session,
            job_id=job_id,
            error=f"worker stopped responding (no heartbeat for {stale_after.total_seconds():g} s);"
            " the job can be queued again",
        )
    return stale


def finish_job(
    session: Session,
    *,
    job_id: int,
    version: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    n_users: int,
    n_items: int,
    n_ratings: int,
    training_seconds: float,
    activate: bool = True,
) -> ModelVersion:
    """Record the trained model, make it active and mark the job succeeded: one transaction.

    Serving processes see either the old version with the job running, or the new version
    with the job succeeded; never a half-finished switch. Commits.
    """
    begin_write(session)
    now = utcnow()
    model = ModelVersion(
        version=version,
        job_id=job_id,
        params=dict(params),
        metrics=dict(metrics),
        n_users=n_users,
        n_items=n_items,
        n_ratings=n_ratings,
        training_seconds=training_seconds,
        created_at=now,
    )
    session.add(model)
    session.flush()
    if activate:
        _set_active(session, version=version, now=now)
    result = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == JobStatus.RUNNING)
        .values(
            status=JobStatus.SUCCEEDED,
            epoch=TrainingJob.epochs,
            metrics=dict(metrics),
            model_version=version,
            finished_at=now,
            heartbeat_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.rollback()
        raise RuntimeError(
            f"job {job_id} is no longer running (marked failed as stale?); "
            f"model {version} was not activated"
        )
    session.commit()
    return model


# --------------------------------------------------------------------------------------------
# Model versions
# --------------------------------------------------------------------------------------------


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


class VersionExistsError(RuntimeError):
    """A model version of this name is already registered."""


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
        _set_active(session, version=version, now=now)
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
    _set_active(session, version=version, now=utcnow())
    session.commit()


def _set_active(session: Session, *, version: str, now: datetime) -> None:
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
