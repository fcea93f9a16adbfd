"""Rating queries: writing a batch, the serving read, a user's pages, erasing, the
snapshot a training job reads. Keyword-only; each takes a session; none commits (see the
package docstring).
"""

from __future__ import annotations

import functools
import json
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    CursorResult,
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
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from recommender.data.ratings import Ratings

from .cursor import decode_cursor, encode_cursor
from .engine import begin_write, is_postgresql, one_of
from .models import Rating
from .snapshot import snapshot_columns


@dataclass(frozen=True, slots=True)
class RatingRow:
    """A rating as written to the store."""

    user_id: str
    item_id: str
    value: float
    timestamp: int


def rating_rows(ratings: Ratings, start: int = 0, stop: int | None = None) -> list[RatingRow]:
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

    stmt: postgresql.Insert | sqlite.Insert  # the same ON CONFLICT clause on both
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
    wanted = one_of(table.c.user_id, "user_ids", dialect)
    folded: ColumnElement[Any]
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


def delete_user(session: Session, *, user_id: str) -> int:
    """Erase every rating of ``user_id``; returns how many were deleted."""
    begin_write(session)
    # A DELETE's result is a CursorResult (Session.execute is typed for any statement).
    result = typing.cast(CursorResult[Any],
                         session.execute(delete(Rating).where(Rating.user_id == user_id)))
    return int(result.rowcount or 0)


def count_ratings(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Rating)) or 0)


def snapshot_ratings(session: Session) -> Ratings:
    """Every rating as a :class:`recommender.data.Ratings`, read from one consistent snapshot.

    Read as columns, never a Python object per rating (:mod:`recommender.store.snapshot`):
    PostgreSQL folds ranges of the table into a few binary rows, SQLite is read in chunks. On
    PostgreSQL the read runs under REPEATABLE READ (call this first in a fresh session); on
    SQLite a single statement already sees one snapshot.
    """
    if is_postgresql(session) and not session.in_transaction():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    return snapshot_columns(session)
