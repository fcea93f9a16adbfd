"""Catalogue queries: writing items, retiring them, listing them, titles, the popular and
"new" lists, co-occurrence and un-rating. Keyword-only; each takes a session (who
commits: the package docstring).

An item is anything that has a row in ``items`` or a rating. Items without a row are active:
retiring one writes a row with ``active = false`` (and no title).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, union
from sqlalchemy.orm import Session, aliased

from .cursor import decode_cursor, encode_cursor
from .engine import begin_write, dialect_insert, execute_dml, one_of
from .models import CatalogueVersion, Item, Rating, utcnow


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One item as listed: its row (when registered) or only its id (when only rated)."""

    item_id: str
    title: str | None = None
    metadata: dict[str, Any] | None = None
    active: bool = True
    created: int | None = None


@dataclass(frozen=True, slots=True)
class ItemRow:
    """A catalogue entry as written to the store (``None`` leaves nothing unset: see upsert)."""

    item_id: str
    title: str | None = None
    metadata: dict[str, Any] | None = None
    active: bool | None = None  # None: a new item is active, an existing one keeps its state
    created: int | None = None  # unix seconds; None: a new item has none, an existing keeps its


ITEMS_PER_STATEMENT = 5_000  # entries per INSERT of upsert_items (6 parameters each)


def upsert_items(session: Session, *, items: Sequence[ItemRow]) -> int:
    """Insert or update catalogue entries; last entry per id wins.

    Title and metadata are replaced; ``active`` and ``created`` only when the entry gives
    them (a re-sent title does not bring a retired item back). One statement per group of
    entries that set ``active`` the same way (at most three), per ``ITEMS_PER_STATEMENT``.
    """
    latest = {item.item_id: item for item in items}
    if not latest:
        return 0
    begin_write(session)
    now = utcnow()
    insert = dialect_insert(session)
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
    for active, group in groups.items():
        # PostgreSQL takes at most 65,535 parameters per statement (6 per entry).
        for start in range(0, len(group), ITEMS_PER_STATEMENT):
            stmt = insert(Item).values(group[start : start + ITEMS_PER_STATEMENT])
            set_ = {
                "title": stmt.excluded.title,
                "metadata": stmt.excluded.metadata,
                "updated_at": stmt.excluded.updated_at,
                "created": func.coalesce(stmt.excluded.created, Item.created),
            }
            if active is not None:
                set_["active"] = stmt.excluded.active
            session.execute(
                stmt.on_conflict_do_update(index_elements=[Item.item_id], set_=set_)
            )
    _bump_catalogue_version(session)
    return len(latest)


def _bump_catalogue_version(session: Session) -> None:
    """Count this transaction's item write (see :class:`CatalogueVersion`). On PostgreSQL
    the row lock it takes makes concurrent item writes commit in the order they bump."""
    insert = dialect_insert(session)
    stmt = insert(CatalogueVersion).values(id=1, version=1)
    session.execute(stmt.on_conflict_do_update(
        index_elements=[CatalogueVersion.id],
        set_={"version": CatalogueVersion.version + 1},
    ))


def get_item(session: Session, *, item_id: str) -> Item | None:
    return session.get(Item, item_id)


def item_titles(session: Session, *, item_ids: Iterable[str]) -> dict[str, str]:
    """``{item_id: title}`` for those of ``item_ids`` that have a title."""
    ids = list(item_ids)
    if not ids:
        return {}
    dialect = session.get_bind().dialect.name
    rows = session.execute(
        select(Item.item_id, Item.title).where(
            one_of(Item.item_id, "item_ids", dialect), Item.title.is_not(None)
        ),
        {"item_ids": ids},
    ).all()
    return {item_id: title for item_id, title in rows if title is not None}


def popular_items(
    session: Session, *, like_threshold: float, limit: int | None
) -> list[tuple[str, float]]:
    """Items liked (rating >= ``like_threshold``) by the most users, with that count.

    Ties break by item id so the answer is deterministic; ``limit=None`` lists them all.
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


def item_known(session: Session, *, item_id: str) -> bool:
    """Whether ``item_id`` is registered or has at least one rating (two index lookups)."""
    return session.get(Item, item_id) is not None or has_ratings(session, item_id=item_id)


def catalogue_entry(session: Session, *, item_id: str) -> CatalogueEntry | None:
    """One item as :func:`list_items` lists it; ``None`` for an item neither registered nor
    rated."""
    row = session.get(Item, item_id)
    if row is None and not has_ratings(session, item_id=item_id):
        return None
    return _entry(item_id, row)


def has_ratings(session: Session, *, item_id: str) -> bool:
    """Whether ``item_id`` has at least one rating (one index lookup)."""
    return (
        session.scalar(select(Rating.item_id).where(Rating.item_id == item_id).limit(1)) is not None
    )


def lock_item(session: Session, *, item_id: str) -> Item | None:
    """The item's row, locked for this write transaction (SQLite: the write lock; PostgreSQL:
    ``SELECT ... FOR UPDATE``), for a read-modify-write such as a merge patch. An item that is
    only rated gets a bare row first, so that there is a row to lock: two concurrent patches
    of it then apply one after the other (without one, both merged into nothing and the
    later write dropped the earlier one's keys). ``None`` when the item is neither
    registered nor rated."""
    begin_write(session)
    item = session.get(Item, item_id, with_for_update=True)
    if item is not None or not has_ratings(session, item_id=item_id):
        return item
    insert = dialect_insert(session)
    session.execute(insert(Item).values(item_id=item_id, active=True, updated_at=utcnow())
                    .on_conflict_do_nothing(index_elements=[Item.item_id]))
    return session.get(Item, item_id, with_for_update=True, populate_existing=True)


def _entry(item_id: str, row: Item | None) -> CatalogueEntry:
    """The listed form of an item: its row, or only its id when it is only rated."""
    if row is None:
        return CatalogueEntry(item_id)
    return CatalogueEntry(item_id, row.title, row.meta, row.active, row.created)


def set_item_active(session: Session, *, item_id: str, active: bool) -> None:
    """Retire (``active=False``) or restore an item; writes a bare row for an item that is
    only rated. The title, metadata and ratings are left as they are."""
    begin_write(session)
    insert = dialect_insert(session)
    stmt = insert(Item).values(item_id=item_id, active=active, updated_at=utcnow())
    stmt = stmt.on_conflict_do_update(
        index_elements=[Item.item_id],
        set_={"active": stmt.excluded.active, "updated_at": stmt.excluded.updated_at},
    )
    session.execute(stmt)
    _bump_catalogue_version(session)


def delete_item_ratings(session: Session, *, item_id: str) -> int:
    """Erase every rating of ``item_id``; returns how many were deleted."""
    begin_write(session)
    return execute_dml(session, delete(Rating).where(Rating.item_id == item_id))


def delete_rating(session: Session, *, user_id: str, item_id: str) -> bool:
    """Erase one rating (a primary-key delete); ``False`` when there was none."""
    begin_write(session)
    deleted = execute_dml(
        session, delete(Rating).where(Rating.user_id == user_id, Rating.item_id == item_id)
    )
    return deleted > 0


def retired_items(session: Session) -> list[str]:
    """The ids of every retired item (a scan of the partial index ``ix_items_retired``)."""
    return list(session.scalars(select(Item.item_id).where(Item.active.is_(False))))


def catalogue_fingerprint(session: Session) -> tuple[int, int, Any]:
    """``(catalogue version, rows, latest updated_at)``: changes with every committed item
    write (each bumps the version, :class:`CatalogueVersion`), in commit order; the row count
    and the latest ``updated_at`` also catch rows written by hand. What serving processes
    poll to know when to re-read the retired set and the metadata: no rows moved."""
    version = select(CatalogueVersion.version).where(CatalogueVersion.id == 1).scalar_subquery()
    version, count, latest = session.execute(
        select(version, func.count(), func.max(Item.updated_at)).select_from(Item)
    ).one()
    return int(version or 0), int(count), latest


def item_metadata(session: Session) -> dict[str, dict[str, Any]]:
    """``{item_id: metadata}`` of every item that has metadata (for metadata filters)."""
    rows = session.execute(select(Item.item_id, Item.meta).where(Item.meta.is_not(None))).all()
    return {item_id: meta for item_id, meta in rows if isinstance(meta, dict)}


def list_items(
    session: Session, *, limit: int, cursor: str | None = None
) -> tuple[list[CatalogueEntry], str | None]:
    """One page of the catalogue in item-id order (registered and only-rated items alike),
    and the cursor of the next page (keyset pagination, as for a user's ratings).

    Raises ``ValueError`` naming the cursor when it is not one this API returned.
    """
    after = decode_cursor(cursor) if cursor is not None else None
    registered = select(Item.item_id)
    rated = select(Rating.item_id)
    if after is not None:
        registered = registered.where(Item.item_id > after)
        rated = rated.where(Rating.item_id > after)
    ids = union(registered, rated).subquery()
    page_ids = list(session.scalars(select(ids.c.item_id).order_by(ids.c.item_id).limit(limit + 1)))
    more = len(page_ids) > limit
    page_ids = page_ids[:limit]
    rows = {
        item.item_id: item
        for item in session.scalars(select(Item).where(Item.item_id.in_(page_ids)))
    }
    page = [_entry(item_id, rows.get(item_id)) for item_id in page_ids]
    return page, (encode_cursor(page_ids[-1]) if more and page_ids else None)


def item_creation_times(session: Session) -> dict[str, int]:
    """``{item_id: unix seconds}`` for every item: the ``created`` the client gave, else the
    item's first rating, else when its row was last written. The "new" list sorts by it.

    Two statements: the items' rows and one ``GROUP BY`` over the ratings (the index on
    ``item_id`` serves it); callers cache the answer.
    """
    out: dict[str, int] = {
        item_id: int(first)
        for item_id, first in session.execute(
            select(Rating.item_id, func.min(Rating.timestamp)).group_by(Rating.item_id)
        )
    }
    for item_id, created, updated in session.execute(
        select(Item.item_id, Item.created, Item.updated_at)
    ):
        if created is not None:
            out[item_id] = int(created)
        elif item_id not in out:
            out[item_id] = _unix(updated)
    return out


def _unix(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(value or 0)


def like_counts(session: Session, *, like_threshold: float) -> list[tuple[str, float]]:
    """Every liked item with its number of likes, most liked first (ties by item id): the
    whole popular list, for filters that the cached head of it cannot fill."""
    return popular_items(session, like_threshold=like_threshold, limit=None)


def cooccurring_items(session: Session, *, item_id: str) -> list[tuple[str, int]]:
    """Items rated by the same users as ``item_id``, with how many users rated both, most
    first (ties by item id). The similar-items answer before any model exists."""
    seed = aliased(Rating)
    other = aliased(Rating)
    both = func.count().label("both")
    rows = session.execute(
        select(other.item_id, both)
        .join(seed, seed.user_id == other.user_id)
        .where(seed.item_id == item_id, other.item_id != item_id)
        .group_by(other.item_id)
        .order_by(both.desc(), other.item_id)
    ).all()
    return [(other_id, int(n)) for other_id, n in rows]


def items_by_id(session: Session, *, item_ids: Sequence[str]) -> dict[str, Item]:
    """The registered rows among ``item_ids``."""
    if not item_ids:
        return {}
    return {
        item.item_id: item
        for item in session.scalars(select(Item).where(Item.item_id.in_(list(item_ids))))
    }


__all__ = [
    "CatalogueEntry",
    "ItemRow",
    "catalogue_fingerprint",
    "cooccurring_items",
    "delete_item_ratings",
    "delete_rating",
    "get_item",
    "item_titles",
    "item_creation_times",
    "item_known",
    "item_metadata",
    "items_by_id",
    "like_counts",
    "list_items",
    "popular_items",
    "lock_item",
    "retired_items",
    "set_item_active",
    "upsert_items",
]
