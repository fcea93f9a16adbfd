"""Bulk paths for whole rating tables: an import and the training snapshot, as columns.

The service writes ratings a batch at a time (:func:`~recommender.store.upsert_ratings`); a
file import and a retrain move millions at once, and go through here without a Python
object per rating:

- :func:`import_ratings` writes a :class:`recommender.data.Ratings` in ONE transaction (all
  or nothing). PostgreSQL: chunks are streamed with ``COPY`` into a temporary staging table
  and upserted from it; SQLite: chunks are handed over as one JSON text each (built by
  pandas in C) and upserted through ``json_each``.
- :func:`snapshot_columns` reads every rating back as columns: PostgreSQL one row per user
  (item ids and binary arrays folded server-side), two connections on disjoint user ranges
  from one exported snapshot; SQLite a chunked cursor read into pandas.

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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from recommender.data.ratings import Ratings, latest_per_pair

from .engine import begin_write, is_postgresql

CHUNK = 500_000  # rows per COPY / JSON chunk: ~25 MB of text, and a progress step
SQLITE_CACHE_KIB = 256 * 1024  # SQLite page cache while importing
SNAPSHOT_CHUNK = 250_000  # rows per fetch on SQLite (~60 MB of row tuples at a time)

_UPSERT_SET = (
    "ON CONFLICT (user_id, item_id) DO UPDATE SET value = excluded.value, "
    "timestamp = excluded.timestamp WHERE excluded.timestamp >= ratings.timestamp"
)


def import_ratings(engine: Engine, ratings: Any, *,
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


def _chunk_frame(ratings: Any, start: int, stop: int):
    """Rows ``start:stop`` as a DataFrame of ids (references to the category strings, not new
    objects), values and timestamps."""

    window = slice(start, stop)
    return pd.DataFrame({
        "user_id": ratings.user_ids[ratings.user_codes[window]],
        "item_id": ratings.item_ids[ratings.item_codes[window]],
        "value": ratings.values[window].astype(np.float64),
        "timestamp": ratings.timestamps[window],
    }, copy=False)


def _import_postgresql(engine: Engine, ratings: Any, progress: Callable[[int], None] | None,
                       chunk: int) -> None:
    """COPY chunks into a staging table and upsert each from it; into an empty table (a first
    load) of at least ``REBUILD_MIN`` rows, COPY straight into ``ratings`` with its indexes
    dropped and rebuilt at the end (a sort per index instead of 10M scattered inserts:
    ~5x faster). Either way one transaction."""

    users = pa.array(ratings.user_ids.tolist(), type=pa.string())
    items = pa.array(ratings.item_ids.tolist(), type=pa.string())
    options = pacsv.WriteOptions(include_header=False)  # strings quoted: "" is not NULL
    with engine.begin() as connection:
        cursor = connection.connection.dbapi_connection.cursor()
        # Writers wait until this import commits; readers go on (until a rebuild below).
        cursor.execute("LOCK TABLE ratings IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute("SELECT EXISTS (SELECT 1 FROM ratings)")
        rebuild = len(ratings) >= REBUILD_MIN and not cursor.fetchone()[0]
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


def _drop_indexes(cursor: Any) -> list[str]:
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


def _restore_indexes(cursor: Any, statements: list[str]) -> None:
    # A sort per index; more memory than the 64 MB default makes it one in-memory pass more
    # often (SET LOCAL: for this transaction only).
    cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
    for statement in statements:
        cursor.execute(statement)


def _import_sqlite(engine: Engine, ratings: Any, progress: Callable[[int], None] | None,
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
        previous = connection.exec_driver_sql("PRAGMA cache_size").scalar()
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
            connection.exec_driver_sql(f"PRAGMA cache_size = {int(previous)}")
            session.commit()


def snapshot_columns(session: Any) -> Any:
    """Every rating as a :class:`recommender.data.Ratings`, in (user, item) order, read as
    columns from one consistent snapshot of the session's transaction."""
    if is_postgresql(session):
        return _snapshot_postgresql(session)
    return _snapshot_sqlite(session)


SNAPSHOT_PARTS = 2  # PostgreSQL: connections reading disjoint user ranges at once

# One row per user: the item ids each followed by a NUL byte (text never holds NUL), and the
# values and timestamps as binary arrays (array_send). The aggregates fold ~140 ratings into
# one row server-side: psycopg hands a COPY stream back one row per call (~3.6 us each, 36 s
# for 10M rows); 70k rows of a few KB cost nothing. Every aggregate of a group reads the
# group's rows in the same order, so the three columns stay aligned; that order is the
# primary key's (user, item) from the index scan (no ORDER BY inside the aggregates: on
# PostgreSQL < 16 that sorts every group again, +1.2 s per aggregate at 10M).
_SNAPSHOT_SELECT = (
    "SELECT user_id, string_agg(convert_to(item_id, 'UTF8') || '\\x00'::bytea, ''::bytea), "
    "array_send(array_agg(value::float4)), array_send(array_agg(timestamp)) FROM ratings "
    "{where} GROUP BY user_id ORDER BY user_id"
)
# Keep the plan a GroupAggregate over the primary key's index scan: rows in key order, no
# hash table of 10M values, no parallel workers interleaving a group's rows, no JIT.
_SNAPSHOT_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL enable_hashagg = off",
                      "SET LOCAL enable_sort = off",
                      "SET LOCAL max_parallel_workers_per_gather = 0")


def _snapshot_postgresql(session: Any, parts: int | None = None) -> Any:
    """The ratings of ``parts`` disjoint user ranges (split at the planner's histogram of
    ``user_id``), each read by its own connection and thread from the session's snapshot
    (``pg_export_snapshot``), then joined in key order."""


    connection = session.connection()
    cursor = connection.connection.dbapi_connection.cursor()
    bounds = _user_bounds(cursor, SNAPSHOT_PARTS if parts is None else parts)
    if not bounds:
        pieces = [_read_range(cursor, None, None)]
    else:
        cursor.execute("SELECT pg_export_snapshot()")
        snapshot_id = cursor.fetchone()[0]
        ranges = list(zip([None, *bounds], [*bounds, None], strict=True))
        engine = connection.engine

        def read(bounds: tuple) -> tuple:
            raw = engine.raw_connection()
            driver = raw.driver_connection
            try:
                driver.autocommit = True  # BEGIN by hand: the snapshot must come first
                with driver.cursor() as raw_cursor:
                    raw_cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    raw_cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_id}'")
                    return _read_range(raw_cursor, *bounds)
            finally:
                driver.execute("ROLLBACK")
                driver.autocommit = False
                raw.close()

        with ThreadPoolExecutor(max_workers=len(ranges)) as pool:
            pieces = list(pool.map(read, ranges))
    cursor.close()
    users = [user for piece in pieces for user in piece[0]]
    counts = np.concatenate([piece[1] for piece in pieces])
    values = np.concatenate([piece[3] for piece in pieces])
    stamps = np.concatenate([piece[4] for piece in pieces])
    item_codes, item_ids = _decode_ids(b"".join(piece[2] for piece in pieces), len(values))
    del pieces
    user_codes = np.repeat(np.arange(len(users), dtype=np.int32), counts)
    return Ratings.from_codes(user_codes, item_codes, np.asarray(users, dtype=object),
                              item_ids, values, stamps)


def _user_bounds(cursor: Any, parts: int) -> list[str]:
    """``parts - 1`` user ids that split ``ratings`` into ranges of about equal numbers of
    rows, from the planner's statistics (none when there are no statistics yet: one range)."""
    if parts < 2:
        return []
    cursor.execute(
        "SELECT histogram_bounds::text::text[] FROM pg_stats WHERE schemaname = "
        "current_schema() AND tablename = 'ratings' AND attname = 'user_id'"
    )
    row = cursor.fetchone()
    if row is None or not row[0] or len(row[0]) < 2 * parts:
        return []
    histogram = row[0]
    return sorted({histogram[len(histogram) * k // parts] for k in range(1, parts)})


def _read_range(cursor: Any, low: str | None, high: str | None) -> tuple:
    """``(user ids, ratings per user, NUL-terminated item ids, values, timestamps)`` of the
    users in ``[low, high)`` (``None``: unbounded)."""
    where, params = [], []
    if low is not None:
        where.append("user_id >= %s")
        params.append(low)
    if high is not None:
        where.append("user_id < %s")
        params.append(high)
    for statement in _SNAPSHOT_SETTINGS:
        cursor.execute(statement)
    cursor.execute(_SNAPSHOT_SELECT.format(where=("WHERE " + " AND ".join(where)) if where
                                           else ""), params, binary=True)
    rows = cursor.fetchall()
    for statement in _SNAPSHOT_SETTINGS:  # the session's transaction goes on with its own
        cursor.execute("RESET " + statement.split()[2])
    users = [row[0] for row in rows]
    # array_send: a 20-byte header (1 dimension), then (int4 length, value) per element.
    counts = np.fromiter(((len(row[2]) - 20) // 8 for row in rows), dtype=np.int64,
                         count=len(rows))
    value_type = np.dtype([("n", ">i4"), ("v", ">f4")])
    stamp_type = np.dtype([("n", ">i4"), ("v", ">i8")])
    values = np.frombuffer(b"".join(bytes(row[2])[20:] for row in rows), value_type)["v"]
    stamps = np.frombuffer(b"".join(bytes(row[3])[20:] for row in rows), stamp_type)["v"]
    items = b"".join(row[1] for row in rows)
    return (users, counts, items, values.astype(np.float32), stamps.astype(np.int64))


def _decode_ids(data: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    """NUL-terminated UTF-8 ids -> ``(codes, categories)`` (pyarrow's dictionary encoding in
    C: no Python object per id occurrence)."""

    if n == 0:
        return np.empty(0, np.int32), np.empty(0, dtype=object)
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 0) + 1
    if len(ends) != n:
        raise RuntimeError(f"snapshot: {len(ends)} item ids for {n} ratings")
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    array = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    encoded = array.dictionary_encode()
    categories = [text[:-1] for text in encoded.dictionary.to_pylist()]  # the NUL
    return (encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32),
            np.asarray(categories, dtype=object))


def _snapshot_sqlite(session: Any) -> Any:


    cursor = session.connection().connection.dbapi_connection.cursor()
    cursor.execute("SELECT user_id, item_id, value, timestamp FROM ratings "
                   "ORDER BY user_id, item_id")
    user_parts, item_parts, values, stamps = [], [], [], []
    user_ids = np.empty(0, dtype=object)
    item_ids = np.empty(0, dtype=object)
    while True:
        rows = cursor.fetchmany(SNAPSHOT_CHUNK)
        if not rows:
            break
        frame = pd.DataFrame.from_records(rows, columns=["u", "i", "v", "t"])
        del rows
        # Codes against the categories seen so far, extended chunk by chunk: the strings of
        # a chunk are freed with it, only the distinct ids stay.
        for column, parts, known in (("u", user_parts, "user"), ("i", item_parts, "item")):
            codes, uniques = pd.factorize(frame[column].to_numpy(dtype=object))
            categories = user_ids if known == "user" else item_ids
            merged = pd.Index(categories)
            position = merged.get_indexer(uniques)
            new = uniques[position < 0]
            position[position < 0] = np.arange(len(categories), len(categories) + len(new))
            categories = np.concatenate([categories, np.asarray(new, dtype=object)])
            if known == "user":
                user_ids = categories
            else:
                item_ids = categories
            parts.append(position[codes].astype(np.int32))
        values.append(frame["v"].to_numpy(np.float32))
        stamps.append(frame["t"].to_numpy(np.int64))
        del frame
    cursor.close()

    def joined(parts: list, dtype: Any) -> np.ndarray:
        return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

    return Ratings.from_codes(joined(user_parts, np.int32), joined(item_parts, np.int32),
                              user_ids, item_ids, joined(values, np.float32),
                              joined(stamps, np.int64))
