"""The training snapshot: every rating read back as columns, from one consistent snapshot,
without a Python object per rating (:func:`snapshot_columns`, behind
:func:`recommender.store.snapshot_ratings`).

- PostgreSQL: one row per range of heap blocks, each column folded server-side into one value
  (ids joined by a separator, numbers as binary arrays); two connections read alternate
  ranges from one exported snapshot; the ids are dictionary-encoded by pyarrow and the rows
  put in (user, item) order on the client (a check when the heap is already in that order).
- SQLite: one row per user (ids, values and timestamps folded by SQLite's aggregates),
  parsed by pyarrow; the plain row-by-row read is kept beside it.

Reads only; the caller owns the transaction.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy.orm import Session

from recommender.data.ratings import Ratings

from .bulk import driver_cursor, fetch_row, fetch_scalar
from .engine import is_postgresql

if TYPE_CHECKING:  # an optional dependency (the postgres extra)
    import psycopg

SNAPSHOT_CHUNK = 250_000  # rows per fetch on SQLite (~60 MB of row tuples at a time)


def snapshot_columns(session: Session) -> Ratings:
    """Every rating as a :class:`recommender.data.Ratings`, in (user, item) order, read as
    columns from one consistent snapshot of the session's transaction."""
    if is_postgresql(session):
        return _snapshot_postgresql(session)
    return _snapshot_sqlite(session)


SNAPSHOT_PARTS = 2  # PostgreSQL: connections reading disjoint block ranges at once
SNAPSHOT_BLOCKS = 4096  # heap blocks (8 KB) per query: ~0.5M ratings, ~10 MB of folded reply

# One row per range of heap blocks: every column folded into one value by an aggregate over a
# TID range scan (no index, no sort, no grouping: the cheapest read PostgreSQL has after a
# plain scan). Ids are joined by a separator and the numbers sent as binary arrays
# (array_send). psycopg hands COPY back one row per call (~3.6 us each: 36 s for 10M rows);
# ~20 rows of a few MB cost nothing. The four aggregates of one plain Aggregate node see the
# rows in the same order, so the columns stay aligned. '/' is never in a valid id
# (recommender.data.ids); a range whose ids hold one anyway is read again with the NUL
# terminator (bytes, exact for any text, but ~2 s more per 10M ratings on the server).
_RANGE_SELECT = {
    b"/": ("SELECT convert_to(string_agg(user_id, '/') || '/', 'UTF8'), "
           "convert_to(string_agg(item_id, '/') || '/', 'UTF8'), "),
    b"\x00": ("SELECT string_agg(convert_to(user_id, 'UTF8') || '\\x00'::bytea, ''::bytea), "
              "string_agg(convert_to(item_id, 'UTF8') || '\\x00'::bytea, ''::bytea), "),
}
# The values go as the stored doubles, cast to float32 here (a ::float4 on the server fails
# on underflow, e.g. 1e-300, where numpy gives 0).
_RANGE_COLUMNS = ("array_send(array_agg(value)), array_send(array_agg(timestamp)) "
                  "FROM ratings WHERE {where}")
# No parallel workers (they would split a range between processes) and no JIT (its compile
# time is more than the query's). SET LOCAL: the session's transaction only, reset after.
_SNAPSHOT_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL max_parallel_workers_per_gather = 0")

# array_send of a 1-dimensional array: a 20-byte header, then (int4 length, value) each.
_ARRAY_HEADER = 20
_FLOAT8S = np.dtype([("n", ">i4"), ("v", ">f8")])
_INT8S = np.dtype([("n", ">i4"), ("v", ">i8")])

Block = tuple[int, int | None]  # a heap block range [start, stop); None: to the end


@dataclass
class Piece:
    """One block range read back and encoded: per id column its distinct ids (a pyarrow
    string array) and each row's code into them; the values and timestamps."""

    user_ids: pa.Array
    user_codes: np.ndarray
    item_ids: pa.Array
    item_codes: np.ndarray
    values: np.ndarray
    timestamps: np.ndarray


def _snapshot_postgresql(session: Session, parts: int | None = None) -> Ratings:
    """Every rating, read in block ranges of ``SNAPSHOT_BLOCKS`` by ``parts`` connections and
    threads from the session's snapshot (``pg_export_snapshot``), then put in (user, item)
    order (a check when the heap is already in key order, as after an import)."""

    parts = SNAPSHOT_PARTS if parts is None else parts
    cursor = driver_cursor(session.connection().connection.driver_connection)
    # The relation's size now: rows this transaction's snapshot sees are in blocks below it
    # (the last range is open-ended all the same).
    cursor.execute("SELECT pg_relation_size('ratings') / current_setting('block_size')::int, "
                   "current_setting('server_version_num')::int")
    blocks, version = fetch_row(cursor)
    # TID range scans came with PostgreSQL 14; before, each range would scan the whole table.
    ranges = _block_ranges(blocks, SNAPSHOT_BLOCKS if version >= 140000 else max(blocks, 1))
    if parts < 2 or len(ranges) < 2:
        pieces = _read_ranges(cursor, ranges)
    else:
        cursor.execute("SELECT pg_export_snapshot()")
        snapshot_id = str(fetch_scalar(cursor))
        engine = session.connection().engine

        def read(share: list[Block]) -> list[Piece]:
            raw = engine.raw_connection()
            try:
                driver = raw.driver_connection
                if driver is None:
                    raise RuntimeError("snapshot: a pooled connection without a driver one")
                driver.autocommit = True  # BEGIN by hand: the snapshot must come first
                try:
                    with driver_cursor(driver) as raw_cursor:
                        raw_cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                        raw_cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_id}'")
                        return _read_ranges(raw_cursor, share)
                finally:
                    driver.execute("ROLLBACK")
                    driver.autocommit = False
            finally:
                raw.close()

        shares = [ranges[k::parts] for k in range(min(parts, len(ranges)))]
        with ThreadPoolExecutor(max_workers=len(shares)) as pool:
            read_back = list(pool.map(read, shares))
        # Back in block order: an imported table then comes out already in key order.
        pieces = [read_back[k % len(shares)][k // len(shares)] for k in range(len(ranges))]
    cursor.close()
    return _join_pieces(pieces)


def _block_ranges(blocks: int, size: int) -> list[Block]:
    """``[start, stop)`` block ranges of ``size`` covering ``blocks``; the last has no end."""
    starts = list(range(0, max(int(blocks), 1), max(int(size), 1)))
    return [(start, stop) for start, stop in zip(starts, [*starts[1:], None], strict=True)]


def _read_ranges(cursor: psycopg.Cursor[Any], ranges: list[Block]) -> list[Piece]:
    """Each block range's ratings, read on ``cursor`` (its transaction's snapshot)."""
    for statement in _SNAPSHOT_SETTINGS:
        cursor.execute(statement)
    pieces = [_read_range(cursor, block) for block in ranges]
    for statement in _SNAPSHOT_SETTINGS:  # the session's transaction goes on with its own
        cursor.execute("RESET " + statement.split()[2])
    return pieces


def _read_range(cursor: psycopg.Cursor[Any], block: Block) -> Piece:
    """The ratings in heap blocks ``block``, read as one folded row (``_RANGE_SELECT``) and
    encoded here, in the reading thread, while the server works on the other ranges."""
    start, stop = block
    where = f"ctid >= '({start},0)'::tid"
    if stop is not None:
        where += f" AND ctid < '({stop},0)'::tid"
    for terminator, ids in _RANGE_SELECT.items():
        cursor.execute(ids + _RANGE_COLUMNS.format(where=where), binary=True)
        users, items, values, stamps = fetch_row(cursor)
        if values is None:  # no row in the range
            empty = pa.array([], pa.large_string())
            return Piece(empty, np.empty(0, np.int32), empty, np.empty(0, np.int32),
                         np.empty(0, np.float32), np.empty(0, np.int64))
        value_array = np.frombuffer(values, _FLOAT8S, offset=_ARRAY_HEADER)["v"]
        user_ends = _ends(users, terminator, len(value_array))
        item_ends = _ends(items, terminator, len(value_array))
        if user_ends is None or item_ends is None:
            continue  # an id held the separator: read again with the next terminator
        user_ids, user_codes = _encode_ids(users, user_ends, runs=True)
        item_ids, item_codes = _encode_ids(items, item_ends, runs=False)
        stamp_array = np.frombuffer(stamps, _INT8S, offset=_ARRAY_HEADER)["v"]
        return Piece(user_ids, user_codes, item_ids, item_codes,
                     value_array.astype(np.float32), stamp_array.astype(np.int64))
    raise RuntimeError(f"snapshot: the ids of blocks {block} do not split into ratings")


def _ends(blob: bytes, terminator: bytes, n: int) -> np.ndarray | None:
    """Where each of the ``n`` terminated ids in ``blob`` ends (None: not ``n`` of them)."""
    ends = np.flatnonzero(np.frombuffer(blob, np.uint8) == terminator[0]) + 1
    return ends if len(ends) == n else None


def _encode_ids(blob: bytes, ends: np.ndarray, *, runs: bool) -> tuple[pa.Array, np.ndarray]:
    """Terminated UTF-8 ids -> ``(distinct ids, codes)``: pyarrow's dictionary encoding in C,
    no Python object per occurrence; the terminators are stripped from the distinct ids.

    ``runs``: encode only the first id of each run of equal ones (a user's ratings are
    mostly adjacent in the heap: 70k runs instead of 10M ids to hash).
    """
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    ids = pa.LargeStringArray.from_buffers(len(ends), pa.py_buffer(offsets), pa.py_buffer(blob))
    if runs and len(ids) > 1:
        same = pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1)).to_numpy(zero_copy_only=False)
        heads = np.concatenate([[0], np.flatnonzero(~same) + 1])
        encoded = ids.take(pa.array(heads)).dictionary_encode()
        codes = np.repeat(encoded.indices.to_numpy(zero_copy_only=False),
                          np.diff(np.append(heads, len(ids))))
    else:
        encoded = ids.dictionary_encode()
        codes = encoded.indices.to_numpy(zero_copy_only=False)
    distinct = pc.utf8_slice_codeunits(encoded.dictionary, 0, -1)
    return distinct, codes.astype(np.int32, copy=False)


def _join_pieces(pieces: list[Piece]) -> Ratings:
    """The pieces' rows as one :class:`Ratings` in (user, item) order."""
    values = np.concatenate([np.empty(0, np.float32), *(piece.values for piece in pieces)])
    stamps = np.concatenate([np.empty(0, np.int64), *(piece.timestamps for piece in pieces)])
    user_codes, user_ids = _merge_codes([(piece.user_ids, piece.user_codes) for piece in pieces])
    item_codes, item_ids = _merge_codes([(piece.item_ids, piece.item_codes) for piece in pieces])
    ratings = Ratings.from_codes(user_codes, item_codes, user_ids, item_ids, values, stamps)
    keys = ratings.pair_keys()  # categories sorted: keys ordered like (user id, item id)
    if not (keys[1:] > keys[:-1]).all():
        # Timsort: runs already in order (an imported table, then appended upserts) cost
        # little more than the check.
        ratings = ratings.subset(np.argsort(keys, kind="stable"))
    return ratings


def _merge_codes(encoded: list[tuple[pa.Array, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-piece ``(distinct ids, codes)`` -> codes into one set of categories, and those,
    sorted as :class:`Ratings` keeps them (then it has nothing to remap)."""
    if not encoded:
        return np.empty(0, np.int32), np.empty(0, dtype=object)
    merged = pa.chunked_array([ids for ids, _codes in encoded],
                              type=pa.large_string()).combine_chunks().dictionary_encode()
    categories = np.asarray(merged.dictionary.to_pylist(), dtype=object)
    order = np.argsort(categories, kind="stable")
    rank = np.empty(len(order), np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    mapping = rank[merged.indices.to_numpy(zero_copy_only=False)]
    out = np.empty(sum(len(codes) for _ids, codes in encoded), np.int32)
    row = first = 0
    for ids, codes in encoded:
        out[row:row + len(codes)] = mapping[first:first + len(ids)][codes]
        row += len(codes)
        first += len(ids)
    return out, categories[order]


SQLITE_USERS = 2_000  # users per fetch of the folded read (~300k ratings at 10M / 70k)

# One row per user, in key order (the table is clustered on it: no sort): the item ids each
# ended by '/', never in a valid id (a table holding one is read row by row instead), and
# the numbers as text lines for pyarrow's CSV parser. '%!.17g': 17 significant digits give
# the stored double back exactly (SQLite's own text form keeps 15).
_SQLITE_FOLDED = (
    "SELECT user_id, count(*), group_concat(item_id, '/') || '/', "
    "group_concat(printf('%!.17g', value), char(10)), group_concat(timestamp, char(10)) "
    "FROM ratings GROUP BY user_id ORDER BY user_id"
)


def _snapshot_sqlite(session: Session) -> Ratings:
    """Every rating, read as one row per user (the aggregates fold each user's ratings in
    SQLite's C) ``SQLITE_USERS`` users at a time: ~70k rows for 10M ratings instead of 10M
    tuples. One statement: one snapshot. Each fetch is parsed by a second thread while
    SQLite computes the next (both release the GIL for most of their work)."""
    dbapi = session.connection().connection.dbapi_connection
    if dbapi is None:
        raise RuntimeError("no database connection to read from")
    cursor = dbapi.cursor()
    cursor.execute(_SQLITE_FOLDED)
    parsed: list[Future[Piece | None]] = []
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            while rows := cursor.fetchmany(SQLITE_USERS):
                parsed.append(pool.submit(_sqlite_piece, rows))
    finally:
        cursor.close()
    pieces = [future.result() for future in parsed]
    if any(piece is None for piece in pieces):
        return _snapshot_sqlite_rows(session)
    return _join_pieces([piece for piece in pieces if piece is not None])


def _sqlite_piece(rows: Sequence[Any]) -> Piece | None:
    """One fetch of the folded read as columns (None: an id held the '/' or a number did not
    parse)."""
    counts = np.fromiter((row[1] for row in rows), np.int64, count=len(rows))
    items = "".join(row[2] for row in rows).encode()
    ends = _ends(items, b"/", int(counts.sum()))
    if ends is None:
        return None
    try:
        values = _numbers("\n".join(row[3] for row in rows), pa.float64())
        stamps = _numbers("\n".join(row[4] for row in rows), pa.int64())
    except pa.ArrowInvalid:
        return None
    item_ids, item_codes = _encode_ids(items, ends, runs=False)
    return Piece(pa.array([row[0] for row in rows], pa.large_string()),
                 np.repeat(np.arange(len(rows), dtype=np.int32), counts), item_ids, item_codes,
                 values.astype(np.float32), stamps.astype(np.int64))


def _numbers(lines: str, kind: pa.DataType) -> np.ndarray:
    """One number per line -> an array (pyarrow's CSV parser, in C)."""
    table = pacsv.read_csv(io.BytesIO(lines.encode()),
                           read_options=pacsv.ReadOptions(column_names=["x"]),
                           convert_options=pacsv.ConvertOptions(column_types={"x": kind}))
    return table.column("x").to_numpy()


def _snapshot_sqlite_rows(session: Session) -> Ratings:
    """The plain read: every row through the cursor, ``SNAPSHOT_CHUNK`` at a time, into
    pandas (a Python tuple per row, ~3x slower than the folded read; used when that one
    cannot split a table, and by the tests as its reference)."""
    dbapi = session.connection().connection.dbapi_connection
    if dbapi is None:
        raise RuntimeError("no database connection to read from")
    cursor = dbapi.cursor()
    cursor.execute("SELECT user_id, item_id, value, timestamp FROM ratings "
                   "ORDER BY user_id, item_id")
    user_parts: list[np.ndarray] = []
    item_parts: list[np.ndarray] = []
    values: list[np.ndarray] = []
    stamps: list[np.ndarray] = []
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
