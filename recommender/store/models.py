"""Typed ORM tables: ratings, items, training jobs, model versions and the active-version row.

The schema itself is made only by the Alembic migrations in ``store/migrations/``; these classes
describe it for queries (and a test checks that the two agree).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from recommender.data.ids import ID_LENGTH

# Explicit constraint names so migrations are reproducible on every dialect.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (what every DateTime column stores)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    PostgreSQL's ``timestamptz`` gives aware values back; SQLite keeps text without an
    offset and gave naive ones. Values are converted to UTC when written (a naive value is
    taken as UTC already) and come back aware in UTC on both, so the API's ISO-8601 times
    always carry ``+00:00``. The column type is unchanged (``impl``): no migration.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class JobStatus:
    """The lifecycle of a training job: queued -> running -> succeeded | failed."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    OPEN = (QUEUED, RUNNING)
    ALL = (QUEUED, RUNNING, SUCCEEDED, FAILED)


class Rating(Base):
    """One user's rating of one item; the primary key makes (user, item) unique."""

    __tablename__ = "ratings"

    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    value: Mapped[float] = mapped_column(Float, nullable=False)
    timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)  # unix seconds

    # Popularity counts group by item. On SQLite the table is clustered on the key (WITHOUT
    # ROWID, migration 0002): a user's ratings are one contiguous range.
    __table_args__ = (Index("ix_ratings_item_id", "item_id"), {"sqlite_with_rowid": False})


class Item(Base):
    """Catalogue entry: an optional title and free-form JSON metadata."""

    __tablename__ = "items"

    item_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    # "metadata" is reserved on declarative classes, hence the attribute name.
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # False once retired: never recommended nor returned as similar (migration 0003). An item
    # that is only rated, with no row here, counts as active.
    active: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=True, server_default=true()
    )
    # Unix seconds the client gave for the item ("new" list); None: not given.
    created: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        Index(
            "ix_items_retired",
            "item_id",
            sqlite_where=text("NOT active"),
            postgresql_where=text("NOT active"),
        ),
    )


class TrainingJob(Base):
    """A retraining request and its progress; claimed and run by exactly one worker."""

    __tablename__ = "training_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # One open (queued or running) job per kind: enforced by a partial unique index, so two
    # concurrent retrain requests cannot both queue a job.
    kind: Mapped[str] = mapped_column(String(32), nullable=False, default="retrain")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=JobStatus.QUEUED)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    epoch: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    epochs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    metrics: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')", name="status_valid"
        ),
        Index("ix_training_jobs_status", "status"),
        Index(
            "ux_training_jobs_one_open_per_kind",
            "kind",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )


class ModelVersion(Base):
    """A trained model: its artifact lives in ``<RECOMMENDER_MODEL_DIR>/<version>``."""

    __tablename__ = "model_versions"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="SET NULL"), nullable=True
    )
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    metrics: Mapped[dict[str, float]] = mapped_column(JSON, nullable=False, default=dict)
    n_users: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    n_items: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    n_ratings: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    training_seconds: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class CatalogueVersion(Base):
    """The single row counting item writes (migration 0004): every write to ``items`` bumps
    it in its own transaction, so its value changes with each commit, in commit order. Part
    of the fingerprint serving processes poll (``items.catalogue_fingerprint``)."""

    __tablename__ = "catalogue_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ActiveModel(Base):
    """The single row naming the version every serving process should use.

    Serving processes poll this one-row table (a primary-key lookup) to pick up a new model
    without restarting; switching versions is one UPDATE inside the job's final transaction.
    """

    __tablename__ = "active_model"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    version: Mapped[str] = mapped_column(
        ForeignKey("model_versions.version", ondelete="RESTRICT"), nullable=False
    )
    activated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)
