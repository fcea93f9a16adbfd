"""The bulk import of whole rating tables, as columns (the snapshot that a retrain reads back
is :mod:`recommender.store.snapshot`).

The service writes ratings a batch at a time (:func:`~recommender.store.upsert_ratings`); a
file import moves millions at once, and goes through here without a Python object per
rating:

- :func:`import_ratings` writes a :class:`recommender.data.Ratings` in ONE transaction (all
  or nothing). PostgreSQL: chunks are streamed with ``COPY`` into a temporary staging table
  and upserted from it; SQLite: chunks are handed over as one JSON text each (built by
  pandas in C) and upserted through ``json_each``.

Semantics of an import: one rating per (user, item) is kept from the table (the latest by
timestamp, the later row on ties), and it replaces a stored rating of the same pair unless
the stored one is newer (a later timestamp): the latest timestamp wins, and importing the
same file twice changes nothing. Functions here commit (they own their transaction), unlike
the queries module.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from recommender.data.ratings import Ratings, latest_per_pair

from .engine import begin_write

if TYPE_CHECKING:  # an optional dependency (the postgres extra)
    import psycopg

CHUNK = 500_000  # rows per COPY / JSON chunk: ~25 MB of text, and a progress step
SQLITE_CACHE_KIB = 256 * 1024  # SQLite page cache while importing

_UPSERT_SET = (
    "ON CONFLICT (user_id, item_id) DO UPDATE SET value = excluded.value, "
    "timestamp = excluded.timestamp WHERE excluded.timestamp >= ratings.timestamp"
)


def import_ratings(engine: Engine, ratings: Ratings, *,
                   progress: Callable[[int], None] | None = None, chunk: int = CHUNK) -> int:
    """Upsert every row of ``ratings`` (a validated :class:`recommender.data.Ratings`) in one
    transaction; returns the number of distinct (user, item) pairs in it.

    ``progress(n)`` is called after each chunk of ``n`` rows is written. Nothing is written
    when anything fails (the transaction rolls back).
    """

    keep = latest_per_pair(ratings)
    if keep is not None:
        ratings = ratings.subset(keep)
    if len(ratings) == 0:
        return 0
    # Key order: each chunk appends to the primary-key index's right edge instead of
    # touching pages all over it (ids' code order is their byte order, the C collation's).
    keys = ratings.pair_keys()
    if not (keys[1:] >= keys[:-1]).all():
        ratings = ratings.subset(np.argsort(keys, kind="stable"))
    del keys
    if engine.dialect.name == "postgresql":
        _import_postgresql(engine, ratings, progress, chunk)
    else:
        _import_sqlite(engine, ratings, progress, chunk)
    return len(ratings)


def _chunk_frame(ratings: Ratings, start: int, stop: int) -> pd.DataFrame:
    """Rows ``start:stop`` as a DataFrame of ids (references to the category strings, not new
    objects), values and timestamps."""

    window = slice(start, stop)
    return pd.DataFrame({
        "user_id": ratings.user_ids[ratings.user_codes[window]],
        "item_id": ratings.item_ids[ratings.item_codes[window]],
        "value": ratings.values[window].astype(np.float64),
        "timestamp": ratings.timestamps[window],
    }, copy=False)


def _import_postgresql(engine: Engine, ratings: Ratings, progress: Callable[[int], None] | None,
                       chunk: int) -> None:
    """COPY chunks into a staging table and upsert each from it; into an empty table (a first
    load) of at least ``REBUILD_MIN`` rows, COPY straight into ``ratings`` with its indexes
    dropped and rebuilt at the end (a sort per index instead of 10M scattered inserts:
    ~5x faster). Either way one transaction."""

    users = pa.array(ratings.user_ids.tolist(), type=pa.string())
    items = pa.array(ratings.item_ids.tolist(), type=pa.string())
    options = pacsv.WriteOptions(include_header=False)  # strings quoted: "" is not NULL
    with engine.begin() as connection:
        cursor = driver_cursor(connection.connection.driver_connection)
        # Writers wait until this import commits; readers go on (until a rebuild below).
        cursor.execute("LOCK TABLE ratings IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute("SELECT EXISTS (SELECT 1 FROM ratings)")
        rebuild = len(ratings) >= REBUILD_MIN and not fetch_scalar(cursor)
        if rebuild:
            indexes = _drop_indexes(cursor)
            target = "ratings"
        else:
            cursor.execute(
                "CREATE TEMPORARY TABLE ratings_staging (user_id text, item_id text, "
                "value double precision, timestamp bigint) ON COMMIT DROP"
            )
            target = "ratings_staging"
        for start in range(0, len(ratings), chunk):
            window = slice(start, start + chunk)
            table = pa.table({
                "user_id": users.take(pa.array(ratings.user_codes[window])),
                "item_id": items.take(pa.array(ratings.item_codes[window])),
                "value": pa.array(ratings.values[window].astype(np.float64)),
                "timestamp": pa.array(ratings.timestamps[window]),
            })
            buffer = io.BytesIO()
            pacsv.write_csv(table, buffer, options)
            del table
            with cursor.copy(f"COPY {target} (user_id, item_id, value, timestamp) "
                             "FROM STDIN (FORMAT csv)") as copy:
                copy.write(buffer.getbuffer())
            del buffer
            if not rebuild:
                cursor.execute(
                    "INSERT INTO ratings (user_id, item_id, value, timestamp) SELECT user_id, "
                    f"item_id, value, timestamp FROM ratings_staging {_UPSERT_SET}"
                )
                cursor.execute("TRUNCATE ratings_staging")
            if progress is not None:
                progress(min(chunk, len(ratings) - start))
        if rebuild:
            _restore_indexes(cursor, indexes)
        cursor.close()


REBUILD_MIN = 100_000  # rows: a first load this big rebuilds the indexes instead


def _drop_indexes(cursor: psycopg.Cursor[Any]) -> list[str]:
    """Drop the primary key and the indexes of ``ratings`` (inside the import's transaction:
    readers of ``ratings`` wait for it from here); returns the statements that restore them.
    Read from the catalogue, so indexes a later migration adds are kept as well."""
    cursor.execute("LOCK TABLE ratings IN ACCESS EXCLUSIVE MODE")
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'ratings'::regclass AND contype = 'p'"
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = 'ratings' AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = 'ratings'::regclass)"
    )
    indexes = cursor.fetchall()
    restore = [f'ALTER TABLE ratings ADD CONSTRAINT "{name}" {definition}'
               for name, definition in constraints]
    restore += [definition for _name, definition in indexes]
    for name, _definition in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    for name, _definition in constraints:
        cursor.execute(f'ALTER TABLE ratings DROP CONSTRAINT "{name}"')
    return restore


def _restore_indexes(cursor: psycopg.Cursor[Any], statements: list[str]) -> None:
    # A sort per index; more memory than the 64 MB default makes it one in-memory pass more
    # often (SET LOCAL: for this transaction only).
    cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
    for statement in statements:
        cursor.execute(statement)


def _import_sqlite(engine: Engine, ratings: Ratings, progress: Callable[[int], None] | None,
                   chunk: int) -> None:


    if sqlite3.sqlite_version_info >= (3, 38):  # ->> is ~30 % faster than json_extract
        fields = "value ->> 0, value ->> 1, value ->> 2, value ->> 3"
    else:
        fields = ", ".join(f"json_extract(value, '$[{k}]')" for k in range(4))
    statement = (
        f"INSERT INTO ratings (user_id, item_id, value, timestamp) SELECT {fields} "
        f"FROM json_each(?) WHERE true {_UPSERT_SET}"  # SQLite needs a WHERE before ON CONFLICT
    )
    with Session(engine) as session:
        begin_write(session)  # BEGIN IMMEDIATE: the write lock for the whole import
        connection = session.connection()
        # The item index takes inserts all over it: a page cache of 2 MB (the default) re-reads
        # its pages from disk for every chunk. 256 MB while importing, then back.
        previous = int(connection.exec_driver_sql("PRAGMA cache_size").scalar_one())
        connection.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        try:
            # A first load: the secondary indexes are built once at the end (a sort) instead of
            # taking every row's insert; the table itself is clustered on the key, which the rows
            # arrive in. SQLite's DDL is transactional: a failure restores them with the rest.
            restore: list[str] = []
            empty = connection.exec_driver_sql("SELECT NOT EXISTS (SELECT 1 FROM ratings)").scalar()
            if len(ratings) >= REBUILD_MIN and empty:
                indexes = connection.exec_driver_sql(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                    "AND tbl_name = 'ratings' AND sql IS NOT NULL").all()
                for name, sql in indexes:
                    connection.exec_driver_sql(f'DROP INDEX "{name}"')
                    restore.append(sql)
            for start in range(0, len(ratings), chunk):
                payload = _chunk_frame(ratings, start, start + chunk).to_json(
                    orient="values", double_precision=15)
                connection.exec_driver_sql(statement, (payload,))
                del payload
                if progress is not None:
                    progress(min(chunk, len(ratings) - start))
            for sql in restore:
                connection.exec_driver_sql(sql)
            session.commit()
        finally:
            session.rollback()  # a no-op after the commit; ends a failed transaction
            connection = session.connection()
            connection.exec_driver_sql(f"PRAGMA cache_size = {previous}")
            session.commit()


def driver_cursor(driver: Any) -> psycopg.Cursor[Any]:
    """A cursor of ``driver`` (a psycopg connection: COPY, binary results; its transaction)."""
    if driver is None:
        raise RuntimeError("no database connection to read from")
    cursor: psycopg.Cursor[Any] = driver.cursor()
    return cursor


def fetch_row(cursor: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    """The one row a query returns (an error when it returned none)."""
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError("a query that returns one row returned none")
    return tuple(row)


def fetch_scalar(cursor: psycopg.Cursor[Any]) -> Any:
    """The first column of the one row a query returns."""
    return fetch_row(cursor)[0]
