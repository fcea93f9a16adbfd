"""Bulk import (COPY / JSON chunks in one transaction), on both databases: latest timestamp
wins, idempotent, all or nothing, indexes rebuilt. The snapshot is tests/store/test_snapshot.py."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from store_helpers import stored_rows

from recommender import store
from recommender.data import Ratings
from recommender.store import RatingRow
from recommender.store.bulk import import_ratings


def _stored(sessions: sessionmaker[Session]) -> list[tuple]:
    return stored_rows(sessions)


def test_import_writes_every_row_and_is_idempotent(engine: Engine, sessions) -> None:
    ratings = Ratings.from_records([("u2", "a", 2.0, 20), ("u1", "b", 4.5, 10),
                                    ("u1", "a", 3.0, 5)])
    for _ in range(2):
        assert import_ratings(engine, ratings, chunk=2) == 3
        assert _stored(sessions) == [("u1", "a", 3.0, 5), ("u1", "b", 4.5, 10),
                                     ("u2", "a", 2.0, 20)]


def test_latest_timestamp_wins_in_the_file_and_against_the_store(engine: Engine,
                                                                  sessions) -> None:
    with sessions() as session:
        store.upsert_ratings(session, ratings=[RatingRow("u", "newer", 1.0, 500),
                                               RatingRow("u", "older", 1.0, 100),
                                               RatingRow("u", "same", 1.0, 300)])
        session.commit()
    ratings = Ratings.from_records([
        ("u", "dup", 2.0, 9), ("u", "dup", 5.0, 10), ("u", "dup", 3.0, 1),  # 10 is the latest
        ("u", "tie", 2.0, 7), ("u", "tie", 4.0, 7),  # a tie: the later row
        ("u", "newer", 5.0, 400),  # the store's rating is newer: kept
        ("u", "older", 5.0, 200),  # the file's is newer: replaces it
        ("u", "same", 5.0, 300),  # same time: the import replaces it
    ])
    assert import_ratings(engine, ratings, chunk=3) == 5
    assert _stored(sessions) == [("u", "dup", 5.0, 10), ("u", "newer", 1.0, 500),
                                 ("u", "older", 5.0, 200), ("u", "same", 5.0, 300),
                                 ("u", "tie", 4.0, 7)]


def test_a_failure_part_way_leaves_nothing_imported(engine: Engine, sessions) -> None:
    with sessions() as session:
        store.upsert_ratings(session, ratings=[RatingRow("kept", "a", 2.0, 1)])
        session.commit()
    rows = [(f"u{n}", f"i{n % 7}", 1.0 + n % 5, n) for n in range(50)]
    chunks = []

    def fail_on_second_chunk(n: int) -> None:
        chunks.append(n)
        if len(chunks) == 2:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        import_ratings(engine, Ratings.from_records(rows), chunk=10,
                       progress=fail_on_second_chunk)
    assert _stored(sessions) == [("kept", "a", 2.0, 1)]


def _index_names(engine: Engine) -> set[str]:
    from sqlalchemy import inspect

    inspector = inspect(engine)
    names = {index["name"] for index in inspector.get_indexes("ratings")}
    return names | {inspector.get_pk_constraint("ratings")["name"] or "pk"}


def test_a_first_load_rebuilds_the_indexes_and_keeps_them(engine: Engine, sessions,
                                                          monkeypatch) -> None:
    """PostgreSQL: a large load into an empty table drops the key and indexes and builds them
    again at the end (here forced for a small table); afterwards they are all there, the
    key holds, and a failure part way restores them with the rest of the transaction."""
    from recommender.store import bulk

    monkeypatch.setattr(bulk, "REBUILD_MIN", 1)
    before = _index_names(engine)
    assert "ix_ratings_item_id" in before
    rows = [(f"u{n % 11}", f"i{n % 13}", 1.0 + n % 5, n) for n in range(143)]

    def fail(_n: int) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        import_ratings(engine, Ratings.from_records(rows), chunk=50, progress=fail)
    assert _index_names(engine) == before and _stored(sessions) == []
    assert import_ratings(engine, Ratings.from_records(rows), chunk=50) == 143
    assert _index_names(engine) == before
    assert len(_stored(sessions)) == 143
    # The table is no longer empty: the next import upserts (the key must be back for that).
    assert import_ratings(engine, Ratings.from_records([("u1", "i1", 5.0, 10_000)])) == 1
    with sessions() as session:
        assert store.user_ratings(session, user_id="u1")["i1"] == 5.0
        assert store.count_ratings(session) == 143
