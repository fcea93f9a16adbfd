"""The SQL store: tables (SQLAlchemy 2 typed ORM), engines and sessions, and the queries,
one module per resource: :mod:`.ratings`, :mod:`.items` (the catalogue), :mod:`.jobs`
(training jobs), :mod:`.versions` (model versions and the active one); :mod:`.bulk` imports
ratings as columns and :mod:`.snapshot` reads them back (what a retrain trains on).

Who commits: store functions never commit (nor roll back). The unit of work is the caller's:
an HTTP request (its route handler commits once, at the end), a job step of the worker, or a
CLI command; each commits what it did as one transaction, so a failure half way writes
nothing, and :func:`unit_of_work` is that block for the worker and the CLI. A function that
writes calls :func:`begin_write` before its first statement; a caller that reads and then
writes calls it before the read (on SQLite a read transaction cannot wait for the write
lock). The one exception is :func:`.bulk.import_ratings`: it takes an engine and commits its
own single transaction (an import lands whole or not at all).

SQLite file by default, PostgreSQL in production; the schema is made only by the Alembic
migrations (:func:`upgrade_database`).
"""

from .cursor import decode_cursor, encode_cursor
from .engine import (
    DEFAULT_DATABASE_URL,
    begin_write,
    make_engine,
    make_reader_factory,
    make_session_factory,
    unit_of_work,
)
from .items import ItemRow, get_item, item_titles, popular_items, upsert_items
from .jobs import (
    claim_next_job,
    enqueue_job,
    fail_job,
    fail_stale_jobs,
    finish_job,
    get_job,
    heartbeat,
    open_job,
    record_progress,
)
from .migrate import upgrade_database
from .models import ActiveModel, Base, Item, JobStatus, ModelVersion, Rating, TrainingJob
from .ratings import (
    RatingRow,
    count_ratings,
    delete_user,
    list_user_ratings,
    rating_rows,
    ratings_of_users,
    refresh_statistics,
    snapshot_ratings,
    upsert_ratings,
    user_ratings,
)
from .versions import (
    NotFoundError,
    VersionExistsError,
    activate_model,
    active_stamp,
    active_version,
    get_model,
    list_models,
    new_version_name,
    register_model,
)

__all__ = [
    "DEFAULT_DATABASE_URL",
    "ActiveModel",
    "Base",
    "Item",
    "ItemRow",
    "JobStatus",
    "ModelVersion",
    "NotFoundError",
    "Rating",
    "RatingRow",
    "rating_rows",
    "TrainingJob",
    "VersionExistsError",
    "activate_model",
    "active_stamp",
    "active_version",
    "begin_write",
    "claim_next_job",
    "count_ratings",
    "decode_cursor",
    "delete_user",
    "encode_cursor",
    "enqueue_job",
    "fail_job",
    "fail_stale_jobs",
    "finish_job",
    "get_item",
    "get_job",
    "get_model",
    "heartbeat",
    "item_titles",
    "list_models",
    "list_user_ratings",
    "make_engine",
    "make_reader_factory",
    "make_session_factory",
    "new_version_name",
    "open_job",
    "popular_items",
    "ratings_of_users",
    "record_progress",
    "refresh_statistics",
    "register_model",
    "snapshot_ratings",
    "upsert_items",
    "upsert_ratings",
    "unit_of_work",
    "upgrade_database",
    "user_ratings",
]
