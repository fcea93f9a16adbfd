"""Helpers shared by the store tests."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from recommender import store


def stored_rows(sessions: sessionmaker[Session]) -> list[tuple]:
    """Every stored rating as ``(user, item, value, timestamp)`` by a plain query, in key
    order: the reference the bulk paths are checked against."""
    with sessions() as session:
        rows = session.execute(
            select(store.Rating.user_id, store.Rating.item_id, store.Rating.value,
                   store.Rating.timestamp).order_by(store.Rating.user_id, store.Rating.item_id)
        ).all()
    return [tuple(r) for r in rows]
