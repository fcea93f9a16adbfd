"""Ratings: upsert semantics, pagination, deletion, popularity and the training snapshot."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from recommender import store
from recommender.store import RatingRow


def test_upsert_inserts_then_updates_value_and_timestamp(session: Session) -> None:
    written = store.upsert_ratings(
        session, ratings=[RatingRow("u1", "a", 4.0, 100), RatingRow("u1", "b", 2.0, 101)]
    )
    session.commit()
    assert written == 2
    store.upsert_ratings(session, ratings=[RatingRow("u1", "a", 1.5, 200)])
    session.commit()
    rows = session.execute(
        select(store.Rating.item_id, store.Rating.value, store.Rating.timestamp).order_by(
            store.Rating.item_id
        )
    ).all()
    assert [tuple(r) for r in rows] == [("a", 1.5, 200), ("b", 2.0, 101)]


def test_last_rating_of_a_pair_in_one_batch_wins(session: Session) -> None:
    written = store.upsert_ratings(
        session,
        ratings=[
            RatingRow("u", "a", 1.0, 1),
            RatingRow("u", "a", 5.0, 2),
            RatingRow("u", "b", 3, 3),
        ],
    )
    session.commit()
    assert written == 2
    assert store.user_ratings(session, user_id="u") == {"a": 5.0, "b": 3.0}


def test_ten_thousand_ratings_in_one_call(session: Session) -> None:
    rows = [RatingRow(f"u{n % 97}", f"i{n}", float(1 + n % 5), n) for n in range(10_000)]
    assert store.upsert_ratings(session, ratings=rows) == 10_000
    session.commit()
    assert store.count_ratings(session) == 10_000
    assert store.user_ratings(session, user_id="u3")["i3"] == 4.0


def test_unicode_and_128_character_ids_round_trip(session: Session) -> None:
    long_id = "é" * 128
    store.upsert_ratings(session, ratings=[RatingRow(long_id, "ñ'\"; DROP", 3.0, 1)])
    session.commit()
    assert store.user_ratings(session, user_id=long_id) == {"ñ'\"; DROP": 3.0}


def test_ratings_of_several_users_in_one_query(session: Session) -> None:
    odd = "ñ'\"; DROP \\ \u2603"  # quotes, backslash, unicode: must survive the JSON fold
    store.upsert_ratings(
        session,
        ratings=[
            RatingRow("u", "a", 5.0, 1),
            RatingRow("u", odd, 2.5, 1),
            RatingRow("v", "a", 1.0, 1),
            RatingRow("w" * 128, "b", 4, 1),
            RatingRow("other", "c", 3.0, 1),
        ],
    )
    session.commit()
    found = store.ratings_of_users(session, user_ids=["u", "v", "w" * 128, "nobody"])
    assert found == {"u": {"a": 5.0, odd: 2.5}, "v": {"a": 1.0}, "w" * 128: {"b": 4.0}}
    assert found["u"] == store.user_ratings(session, user_id="u")
    # Numbers as JSON gives them back: an integral rating may be an int (4 == 4.0).
    assert all(isinstance(v, int | float) for r in found.values() for v in r.values())
    assert store.ratings_of_users(session, user_ids=[]) == {}


def test_ratings_of_users_whose_ids_look_like_array_syntax(session: Session) -> None:
    """PostgreSQL gets the ids as one array parameter: ids with commas, braces, quotes,
    backslashes or the word NULL are each one id, not array syntax."""
    odd = ["a,b", "{x}", "NULL", '"q"', "back\\slash", " padded ", "a"]
    store.upsert_ratings(session, ratings=[RatingRow(u, "i", float(n + 1), 1)
                                           for n, u in enumerate(odd[:-1])])
    session.commit()
    found = store.ratings_of_users(session, user_ids=odd)
    assert found == {u: {"i": float(n + 1)} for n, u in enumerate(odd[:-1])}
    assert store.ratings_of_users(session, user_ids=["a", "b", "x", "null"]) == {}
    store.upsert_items(session, items=[store.ItemRow(u, title=f"t{n}")
                                       for n, u in enumerate(odd[:-1])])
    session.commit()
    assert store.item_titles(session, item_ids=odd) == {u: f"t{n}"
                                                        for n, u in enumerate(odd[:-1])}


def test_empty_batch_writes_nothing(session: Session) -> None:
    assert store.upsert_ratings(session, ratings=[]) == 0
    assert store.count_ratings(session) == 0


def test_keyset_pages_cover_every_rating_once(session: Session) -> None:
    store.upsert_ratings(
        session,
        ratings=[RatingRow("u", f"i{n:02d}", 3.0, n) for n in range(7)]
        + [RatingRow("other", "i00", 1.0, 0)],
    )
    session.commit()
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = store.list_user_ratings(session, user_id="u", limit=3, cursor=cursor)
        seen += [r.item_id for r in page]
        pages += 1
        if cursor is None:
            break
    assert seen == [f"i{n:02d}" for n in range(7)]
    assert pages == 3


def test_a_page_that_ends_exactly_has_no_next_cursor(session: Session) -> None:
    store.upsert_ratings(session, ratings=[RatingRow("u", f"i{n}", 3.0, n) for n in range(3)])
    session.commit()
    page, cursor = store.list_user_ratings(session, user_id="u", limit=3)
    assert len(page) == 3 and cursor is None


def test_a_garbage_cursor_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="cursor="):
        store.decode_cursor("%%%not-base64")


def test_delete_user_erases_only_that_user(session: Session) -> None:
    store.upsert_ratings(
        session,
        ratings=[
            RatingRow("u", "a", 3.0, 1),
            RatingRow("u", "b", 3.0, 1),
            RatingRow("v", "a", 5, 1),
        ],
    )
    session.commit()
    assert store.delete_user(session, user_id="u") == 2
    session.commit()
    assert store.user_ratings(session, user_id="u") == {}
    assert store.user_ratings(session, user_id="v") == {"a": 5.0}


def test_popular_items_count_likes_and_break_ties_by_id(session: Session) -> None:
    store.upsert_ratings(
        session,
        ratings=[
            RatingRow("u1", "b", 5.0, 1),
            RatingRow("u2", "b", 4.0, 1),
            RatingRow("u3", "b", 1.0, 1),  # not a like
            RatingRow("u1", "c", 4.0, 1),
            RatingRow("u1", "a", 4.5, 1),
            RatingRow("u2", "d", 2.0, 1),
        ],
    )
    session.commit()
    assert store.popular_items(session, like_threshold=4.0, limit=3) == [
        ("b", 2.0),
        ("a", 1.0),
        ("c", 1.0),
    ]


def test_snapshot_holds_every_rating_as_ratings_arrays(session: Session) -> None:
    store.upsert_ratings(
        session, ratings=[RatingRow("u2", "a", 2.0, 20), RatingRow("u1", "b", 4.5, 10)]
    )
    session.commit()
    snapshot = store.snapshot_ratings(session)
    assert len(snapshot) == 2
    assert list(snapshot.users) == ["u1", "u2"]
    assert list(snapshot.items) == ["b", "a"]
    assert snapshot.values.dtype == np.float32 and list(snapshot.values) == [4.5, 2.0]
    assert snapshot.timestamps.dtype == np.int64 and list(snapshot.timestamps) == [10, 20]


def test_concurrent_writers_keep_one_row_per_pair_and_lose_nothing(
    sessions: sessionmaker[Session],
) -> None:
    """Threads upsert overlapping pairs in different orders: no duplicates, no deadlock,
    no lost rows, and each pair ends with a value one of the writers wrote last."""
    users, items, rounds, threads = 8, 12, 5, 6
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for r in range(rounds):
                rows = [
                    RatingRow(f"u{u}", f"i{i}", float(1 + (t + r) % 5), 1000 * r + t)
                    for u in range(users)
                    for i in range(items)
                ]
                if t % 2:
                    rows.reverse()
                with sessions() as session:
                    store.upsert_ratings(session, ratings=rows)
                    session.commit()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    with sessions() as session:
        assert store.count_ratings(session) == users * items
        distinct = session.scalar(
            select(func.count()).select_from(
                select(store.Rating.user_id, store.Rating.item_id).distinct().subquery()
            )
        )
        assert distinct == users * items
        last_round_values = {float(1 + (t + rounds - 1) % 5) for t in range(threads)}
        last_round_stamps = {1000 * (rounds - 1) + t for t in range(threads)}
        for rating in session.scalars(select(store.Rating)):
            # Every thread's last round is its last write, so the survivor is from a last round
            # and its value and timestamp come from the same write.
            assert rating.timestamp in last_round_stamps
            assert rating.value in last_round_values
            assert rating.value == float(1 + (rating.timestamp % 1000 + rounds - 1) % 5)


def test_refresh_statistics_gives_the_planner_row_counts(session: Session) -> None:
    from sqlalchemy import text

    store.upsert_ratings(
        session, ratings=[RatingRow(f"u{n % 7}", f"i{n}", 3.0, n) for n in range(50)]
    )
    session.commit()
    store.refresh_statistics(session)
    session.commit()
    if session.get_bind().dialect.name == "sqlite":
        stat = session.execute(
            text("SELECT stat FROM sqlite_stat1 WHERE idx = 'ix_ratings_item_id'")
        )
        assert stat.scalar_one().split()[0] == "50"  # rows in the index
    else:
        tuples = session.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'ratings'"))
        assert tuples.scalar_one() == 50


def test_reader_sessions_hold_no_transaction_on_postgresql(engine) -> None:
    """The recommendation path's reads: autocommit on PostgreSQL (no BEGIN / ROLLBACK round
    trips, every statement sees the latest commits), plain sessions on SQLite."""
    readers = store.make_reader_factory(engine)
    writers = store.make_session_factory(engine)
    with readers() as reader:
        assert store.ratings_of_users(reader, user_ids=["u"]) == {}
        with writers() as writer:
            store.upsert_ratings(writer, ratings=[RatingRow("u", "a", 4.0, 1)])
            writer.commit()
        if engine.dialect.name == "postgresql":
            import psycopg

            dbapi = reader.connection().connection.dbapi_connection
            assert dbapi.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            # No snapshot held from the first read: the new rating shows at once.
            assert store.ratings_of_users(reader, user_ids=["u"]) == {"u": {"a": 4.0}}
    with readers() as reader:
        assert store.ratings_of_users(reader, user_ids=["u"]) == {"u": {"a": 4.0}}
