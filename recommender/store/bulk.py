"""Bulk paths for whole rating tables: an import and the training snapshot, as columns.

The service writes ratings a batch at a time (:func:`~recommender.store.upsert_ratings`); a
file import and a retrain move millions at once, and go through here without a Python
object per rating:

- :func:`import_ratings` writes a :class:`recommender.data.Ratings` in ONE transaction (all
  or nothing). PostgreSQL: chunks are streamed with ``COPY`` into a temporary staging table
  and upserted from it; SQLite: chunks are handed over as one JSON text each (built by
  pandas in C) and upserted through ``json_each``.
- :func:`snapshot_columns` reads every rating back as columns: PostgreSQL ``COPY (SELECT ...)
  TO STDOUT`` parsed by pyarrow, SQLite a chunked cursor read into pandas.

Semantics of an import: one rating per (user, item) is kept from the table (the latest by
timestamp, the later row on ties), and it replaces a stored rating of the same pair unless
the stored one is newer (a later timestamp): the latest timestamp wins, and importing the
same file twice changes nothing. Functions here commit (they own their transaction), unlike
the queries module.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import Engine

from .engine import begin_write, is_postgresql

CHUNK = 500_000  # rows per COPY / JSON chunk: ~25 MB of text, and a progress step
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
    from recommender.data.ratings import latest_per_pair

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
    import pandas as pd

    window = slice(start, stop)
    return pd.DataFrame({
        "user_id": ratings.user_ids[ratings.user_codes[window]],
        "item_id": ratings.item_ids[ratings.item_codes[window]],
        "value": ratings.values[window].astype(np.float64),
        "timestamp": ratings.timestamps[window],
    }, copy=False)


def _import_postgresql(engine: Engine, ratings: Any, progress: Callable[[int], None] | None,
                       chunk: int) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    users = pa.array(ratings.user_ids.tolist(), type=pa.string())
    items = pa.array(ratings.item_ids.tolist(), type=pa.string())
    options = pacsv.WriteOptions(include_header=False)  # strings quoted: "" is not NULL
    with engine.begin() as connection:
        cursor = connection.connection.dbapi_connection.cursor()
        cursor.execute(
            "CREATE TEMPORARY TABLE ratings_staging (user_id text, item_id text, "
            "value double precision, timestamp bigint) ON COMMIT DROP"
        )
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
            with cursor.copy("COPY ratings_staging FROM STDIN (FORMAT csv)") as copy:
                copy.write(buffer.getbuffer())
            del buffer
            cursor.execute(
                "INSERT INTO ratings (user_id, item_id, value, timestamp) "
                f"SELECT user_id, item_id, value, timestamp FROM ratings_staging {_UPSERT_SET}"
            )
            cursor.execute("TRUNCATE ratings_staging")
            if progress is not None:
                progress(min(chunk, len(ratings) - start))
        cursor.close()


def _import_sqlite(engine: Engine, ratings: Any, progress: Callable[[int], None] | None,
                   chunk: int) -> None:
    from sqlalchemy.orm import Session

    statement = (
        "INSERT INTO ratings (user_id, item_id, value, timestamp) "
        "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
        "json_extract(value, '$[2]'), json_extract(value, '$[3]') FROM json_each(?) "
        f"WHERE true {_UPSERT_SET}"  # SQLite needs a WHERE before ON CONFLICT here
    )
    with Session(engine) as session:
        begin_write(session)  # BEGIN IMMEDIATE: the write lock for the whole import
        connection = session.connection()
        for start in range(0, len(ratings), chunk):
            payload = _chunk_frame(ratings, start, start + chunk).to_json(
                orient="values", double_precision=15)
            connection.exec_driver_sql(statement, (payload,))
            del payload
            if progress is not None:
                progress(min(chunk, len(ratings) - start))
        session.commit()


def snapshot_columns(session: Any) -> Any:
    """Every rating as a :class:`recommender.data.Ratings`, in (user, item) order, read as
    columns from one consistent snapshot of the session's transaction."""
    if is_postgresql(session):
        return _snapshot_postgresql(session)
    return _snapshot_sqlite(session)


def _snapshot_postgresql(session: Any) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from recommender.data.ratings import Ratings

    cursor = session.connection().connection.dbapi_connection.cursor()
    buffer = io.BytesIO()
    with cursor.copy(
        "COPY (SELECT user_id, item_id, value, timestamp FROM ratings "
        "ORDER BY user_id, item_id) TO STDOUT (FORMAT csv)"
    ) as copy:
        for block in copy:
            buffer.write(block)
    cursor.close()
    if buffer.tell() == 0:  # no ratings (pyarrow refuses an empty CSV)
        return Ratings.from_codes(np.empty(0, np.int32), np.empty(0, np.int32), [], [],
                                  np.empty(0, np.float32), np.empty(0, np.int64))
    buffer.seek(0)
    ids = pa.dictionary(pa.int32(), pa.string())
    table = pacsv.read_csv(
        buffer,
        read_options=pacsv.ReadOptions(column_names=["user", "item", "value", "timestamp"],
                                       block_size=16 << 20),
        convert_options=pacsv.ConvertOptions(
            column_types={"user": ids, "item": ids, "value": pa.float32(),
                          "timestamp": pa.int64()},
            quoted_strings_can_be_null=False, strings_can_be_null=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),  # ids may hold any text
    )
    del buffer
    columns = []
    for name in ("user", "item"):
        chunked = table.column(name).unify_dictionaries()
        joined = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
        columns.append((joined.indices.to_numpy(zero_copy_only=False),
                        np.asarray(joined.dictionary.to_pylist(), dtype=object)))
    values = table.column("value").to_numpy()
    stamps = table.column("timestamp").to_numpy()
    del table
    (user_codes, user_ids), (item_codes, item_ids) = columns
    return Ratings.from_codes(user_codes, item_codes, user_ids, item_ids, values, stamps)


def _snapshot_sqlite(session: Any) -> Any:
    import pandas as pd

    from recommender.data.ratings import Ratings

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
