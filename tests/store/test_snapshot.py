"""The training snapshot (``store.snapshot_ratings``) on both databases: exactly the rows a
plain ``ORDER BY user_id, item_id`` query returns, in that order, whatever the heap order, the
ids, the chunks and the block ranges; one consistent snapshot while others write."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from store_helpers import stored_rows

from recommender import store
from recommender.data import Ratings
from recommender.store import RatingRow, snapshot
from recommender.store.bulk import import_ratings

ODD_IDS = ["plain", "a,b", 'say "hi"', "back\\slash", "tab\there", "new\nline", "\u2603 é",
           "'; DROP TABLE ratings; --", "x" * 128, "NULL", "\\N", " spaced "]


@pytest.fixture
def small_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """One heap block per PostgreSQL range, 3 users per folded SQLite fetch and 7 rows per
    plain one: many pieces to join."""
    monkeypatch.setattr(snapshot, "SNAPSHOT_BLOCKS", 1)
    monkeypatch.setattr(snapshot, "SQLITE_USERS", 3)
    monkeypatch.setattr(snapshot, "SNAPSHOT_CHUNK", 7)


def _stored(sessions: sessionmaker[Session]) -> list[tuple]:
    """The reference: every row by a plain query, in key order, values as float32."""
    return [(u, i, float(np.float32(v)), t) for u, i, v, t in stored_rows(sessions)]


def _rows(ratings: Ratings) -> list[tuple]:
    return list(zip(ratings.users.tolist(), ratings.items.tolist(), ratings.values.tolist(),
                    ratings.timestamps.tolist(), strict=True))


def _snapshot(sessions: sessionmaker[Session]) -> Ratings:
    with sessions() as session:
        return store.snapshot_ratings(session)


@pytest.mark.parametrize("reads", ["default", "small"])
def test_snapshot_round_trips_odd_ids_and_values(engine: Engine, sessions, reads: str,
                                                 request: pytest.FixtureRequest) -> None:
    if reads == "small":
        request.getfixturevalue("small_reads")
    rng = np.random.default_rng(0)
    rows = [(u, i, float(rng.integers(1, 11)) / 2, int(rng.integers(0, 2**40)))
            for u in ODD_IDS for i in ODD_IDS[::-1][:5]]
    ratings = Ratings.from_records(rows)
    assert import_ratings(engine, ratings, chunk=7) == len(rows)
    taken = _snapshot(sessions)
    assert _rows(taken) == sorted(rows) == _stored(sessions)  # in (user, item) order
    assert taken.values.dtype == np.float32 and taken.timestamps.dtype == np.int64
    assert taken.user_codes.dtype == np.int32 and taken.item_codes.dtype == np.int32
    assert taken.user_ids.tolist() == sorted(ODD_IDS)
    assert taken.item_ids.tolist() == sorted(ODD_IDS[::-1][:5])
    assert taken.fingerprint() == ratings.fingerprint()


def test_snapshot_of_an_empty_store(sessions, small_reads) -> None:
    taken = _snapshot(sessions)
    assert len(taken) == 0 and taken.n_users == 0 and taken.n_items == 0


def test_snapshot_is_in_key_order_whatever_the_heap_order(engine: Engine, sessions,
                                                          small_reads) -> None:
    """Rows written user after user in batches (each user's ratings spread over the heap, no
    two adjacent), then updated, deleted and re-inserted: PostgreSQL's heap is then far from
    key order, and the snapshot must still be exactly the plain query's rows in key order."""
    users = [f"u{n:02d}" for n in range(12)]
    for item in range(9):  # batch k: every user's k-th item
        with sessions() as session:
            store.upsert_ratings(session, ratings=[
                RatingRow(user, f"i{(item * 5) % 9}", 1.0 + (n + item) % 5, 100 * item + n)
                for n, user in enumerate(users)])
            session.commit()
    with sessions() as session:
        store.upsert_ratings(session, ratings=[RatingRow("u03", "i0", 4.5, 9_999),
                                               RatingRow("u00", "i8", 0.5, 9_998),
                                               RatingRow("a-first", "z-last", 2.5, 1)])
        store.delete_user(session, user_id="u07")
        session.commit()
    expected = _stored(sessions)
    assert len(expected) == 12 * 9 - 9 + 1
    assert ("u03", "i0", 4.5, 9_999) in expected
    taken = _snapshot(sessions)
    assert _rows(taken) == expected
    assert taken.user_ids.tolist() == sorted({u for u, *_ in expected})


def test_ids_holding_the_separator_come_back_whole(engine: Engine, sessions,
                                                    small_reads) -> None:
    """'/' is not a valid id (recommender.data.ids), but the store does not check it: a table
    holding one (an older store, a direct write) must still come back exact. Control
    characters, quotes and backslashes likewise."""
    odd = ["a/b", "/", "//x", "tail/", "\x01", "\x1f\x1e", "nl\r\n", "q'\"", "\\x00", "é/€"]
    rows = [RatingRow(u, i, 1.0 + (k % 9) / 2, k) for k, (u, i) in
            enumerate((u, i) for u in odd for i in odd[::3] + ["plain"])]
    with sessions() as session:
        store.upsert_ratings(session, ratings=rows)
        session.commit()
    expected = _stored(sessions)
    assert _rows(_snapshot(sessions)) == expected == sorted(
        (r.user_id, r.item_id, r.value, r.timestamp) for r in rows)


def test_values_come_back_as_the_stored_doubles_cast_to_float32(engine: Engine, sessions,
                                                                small_reads) -> None:
    """Values no short decimal gives back (SQLite folds them as text: 17 digits), tiny, huge
    and negative ones; on SQLite the folded read equals the plain row-by-row one."""
    # Halfway between two float32s, then one double above and below: 15 digits round both
    # to the same side, the float32 casts differ.
    midpoint = (1.5 + float(np.nextafter(np.float32(1.5), np.float32(2)))) / 2
    values = [0.1 + 0.2, 1 / 3, 3.7, 2.5, 1e-300, 123456789.123456789, -4.25, 5.0,
              float(np.float32(1 / 3)), float(np.nextafter(np.float32(2), np.float32(3))),
              float(np.nextafter(midpoint, 2.0)), float(np.nextafter(midpoint, 1.0))]
    rows = [RatingRow(f"u{k % 3}", f"i{k}", v, k) for k, v in enumerate(values)]
    with sessions() as session:
        store.upsert_ratings(session, ratings=rows)
        session.commit()
    taken = _snapshot(sessions)
    expected = sorted((r.user_id, r.item_id, float(np.float32(r.value)), r.timestamp)
                      for r in rows)
    assert _rows(taken) == expected == _stored(sessions)
    if engine.dialect.name == "sqlite":
        with sessions() as session:
            plain = snapshot._snapshot_sqlite_rows(session)
        assert _rows(plain) == expected
        assert plain.values.tobytes() == taken.values.tobytes()


def test_snapshot_reads_in_chunks(engine: Engine, sessions, small_reads) -> None:
    """Several fetches on SQLite (the categories grow chunk by chunk), several block ranges on
    PostgreSQL: the same table."""
    rows = [(f"u{n % 13:02d}", f"i{(n * 7) % 17:02d}", 1.0 + n % 5, n) for n in range(200)]
    ratings = Ratings.from_records(rows)
    import_ratings(engine, ratings)
    taken = _snapshot(sessions)
    assert taken.fingerprint() == ratings.fingerprint()
    assert taken.users.tolist() == [u for u, *_ in sorted(rows)]


def test_block_ranges_cover_the_table_and_the_last_is_open() -> None:
    assert snapshot._block_ranges(0, 4) == [(0, None)]
    assert snapshot._block_ranges(4, 4) == [(0, None)]
    assert snapshot._block_ranges(10, 4) == [(0, 4), (4, 8), (8, None)]


def test_postgresql_snapshot_in_parallel_ranges_sees_one_snapshot(engine: Engine, sessions,
                                                                   small_reads) -> None:
    """PostgreSQL reads alternate block ranges on their own connections from the session's
    exported snapshot: the same table as one connection, in key order; a rating inserted,
    one updated and one deleted after the snapshot began are neither seen nor half seen."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite reads one cursor")
    rows = [(f"u{n:03d}", ODD_IDS[n % len(ODD_IDS)], 1.0 + n % 5, n) for n in range(600)]
    import_ratings(engine, Ratings.from_records(rows))
    expected = _stored(sessions)
    with sessions() as session:
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        blocks = session.execute(text(
            "SELECT pg_relation_size('ratings') / current_setting('block_size')::int")).scalar_one()
        assert len(snapshot._block_ranges(blocks, snapshot.SNAPSHOT_BLOCKS)) >= 4
        with sessions() as writer:
            store.upsert_ratings(writer, ratings=[RatingRow("u999", "late", 3.0, 1),
                                                  RatingRow("u001", ODD_IDS[1], 5.0, 7)])
            writer.commit()
            store.delete_user(writer, user_id="u002")
            writer.commit()
        taken = snapshot._snapshot_postgresql(session, parts=3)
        whole = snapshot._snapshot_postgresql(session, parts=1)
        # The session's transaction goes on with its own settings after the read.
        assert session.execute(text("SHOW max_parallel_workers_per_gather")).scalar_one() != "0"
    assert _rows(taken) == _rows(whole) == expected == sorted(rows)
    assert ("u001", ODD_IDS[1], 2.0, 1) in expected
    assert len(_stored(sessions)) == 600  # u002's one rating gone, u999's one added
