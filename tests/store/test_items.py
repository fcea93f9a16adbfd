"""Catalogue queries (store/items.py) and migration 0003, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.orm import Session

from recommender import store
from recommender.store import items as store_items
from recommender.store import testing


def _item(session: Session, item_id: str) -> store.Item:
    """The row as stored now (not the session's cached object)."""
    return session.get(store.Item, item_id, populate_existing=True)


def _ratings(session: Session, rows: list[tuple[str, str, float, int]]) -> None:
    store.upsert_ratings(session, ratings=[store.RatingRow(*row) for row in rows])
    session.commit()


def test_items_are_active_by_default_and_retiring_keeps_title_metadata_and_ratings(
    session: Session,
) -> None:
    store.upsert_items(session, items=[store.ItemRow("a", title="A", metadata={"g": ["x"]})])
    _ratings(session, [("u", "a", 5.0, 1), ("u", "b", 4.0, 2), ("v", "b", 1.0, 3)])
    assert store_items.retired_items(session) == []
    store_items.set_item_active(session, item_id="a", active=False)
    store_items.set_item_active(session, item_id="b", active=False)  # only rated: a bare row
    session.commit()
    assert sorted(store_items.retired_items(session)) == ["a", "b"]
    a = _item(session, "a")
    assert (a.title, a.meta, a.active) == ("A", {"g": ["x"]}, False)
    assert _item(session, "b").title is None
    assert store.count_ratings(session) == 3
    # Re-sending the title leaves the state; an explicit active restores it.
    store.upsert_items(session, items=[store.ItemRow("a", title="A2")])
    session.commit()
    assert sorted(store_items.retired_items(session)) == ["a", "b"]
    store.upsert_items(session, items=[store.ItemRow("a", title="A3", active=True)])
    session.commit()
    assert store_items.retired_items(session) == ["b"]
    assert _item(session, "a").title == "A3"


def test_created_is_kept_unless_given_again(session: Session) -> None:
    store.upsert_items(session, items=[store.ItemRow("a", created=100)])
    store.upsert_items(session, items=[store.ItemRow("a", title="T")])
    session.commit()
    assert _item(session, "a").created == 100
    store.upsert_items(session, items=[store.ItemRow("a", created=200)])
    session.commit()
    assert _item(session, "a").created == 200


def test_one_batch_mixing_active_states_writes_every_item(session: Session) -> None:
    store.upsert_items(
        session,
        items=[
            store.ItemRow("a", active=False),
            store.ItemRow("b"),
            store.ItemRow("c", active=True),
            store.ItemRow("a", title="last wins", active=False),
        ],
    )
    session.commit()
    assert store_items.retired_items(session) == ["a"]
    assert _item(session, "a").title == "last wins"
    assert {e.item_id for e in store_items.list_items(session, limit=10)[0]} == {"a", "b", "c"}


def test_more_items_than_one_statement_takes_are_all_written(session: Session) -> None:
    """PostgreSQL takes at most 65,535 parameters per statement: 12,000 entries of one kind
    (72,000 parameters in one INSERT) failed there before upsert_items split them."""
    n = 12_000
    items = [store.ItemRow(f"i{k}", title=f"t{k}") for k in range(n)]
    items.append(store.ItemRow("i8", title="last wins", active=False))
    assert store.upsert_items(session, items=items) == n
    session.commit()
    titles = store.item_titles(session, item_ids=[f"i{k}" for k in range(n)])
    assert len(titles) == n and titles["i8"] == "last wins" and titles["i11999"] == "t11999"
    assert store_items.retired_items(session) == ["i8"]


def test_erasing_an_items_ratings_and_un_rating(session: Session) -> None:
    _ratings(session, [("u", "a", 5.0, 1), ("v", "a", 2.0, 1), ("u", "b", 4.0, 2)])
    assert store_items.delete_rating(session, user_id="u", item_id="b") is True
    assert store_items.delete_rating(session, user_id="u", item_id="b") is False
    assert store_items.delete_item_ratings(session, item_id="a") == 2
    session.commit()
    assert store.count_ratings(session) == 0


def test_the_item_list_pages_the_union_of_registered_and_rated_items(session: Session) -> None:
    store.upsert_items(session, items=[store.ItemRow(i, title=i.upper()) for i in ("b", "d")])
    _ratings(session, [("u", "a", 5.0, 1), ("u", "b", 4.0, 2), ("v", "c", 1.0, 3)])
    seen, cursor = [], None
    while True:
        page, cursor = store_items.list_items(session, limit=2, cursor=cursor)
        seen.extend((e.item_id, e.title) for e in page)
        if cursor is None:
            break
    assert seen == [("a", None), ("b", "B"), ("c", None), ("d", "D")]
    with pytest.raises(ValueError, match="cursor"):
        store_items.list_items(session, limit=2, cursor="%%%")


def test_known_items_creation_times_and_fingerprint(session: Session) -> None:
    assert not store_items.item_known(session, item_id="a")
    before = store_items.catalogue_fingerprint(session)
    store.upsert_items(
        session, items=[store.ItemRow("r", title="R"), store.ItemRow("c", created=7)]
    )
    _ratings(session, [("u", "a", 5.0, 40), ("v", "a", 2.0, 30), ("u", "c", 4.0, 2)])
    assert store_items.item_known(session, item_id="a")
    assert store_items.item_known(session, item_id="r")
    after = store_items.catalogue_fingerprint(session)
    assert after != before and after[1] == 2 and after[0] == before[0] + 1  # one write
    times = store_items.item_creation_times(session)
    assert times["a"] == 30 and times["c"] == 7
    registered = _item(session, "r").updated_at
    assert isinstance(registered, datetime) or registered is not None
    assert abs(times["r"] - int(registered.timestamp())) <= 1
    store_items.set_item_active(session, item_id="a", active=False)
    session.commit()
    assert store_items.catalogue_fingerprint(session) != after


def test_co_ratings_and_like_counts(session: Session) -> None:
    _ratings(
        session,
        [
            ("u", "s", 5.0, 1),
            ("u", "x", 4.0, 1),
            ("u", "y", 1.0, 1),
            ("v", "s", 2.0, 1),
            ("v", "x", 5.0, 1),
            ("w", "s", 4.0, 1),
            ("w", "z", 3.0, 1),
            ("w", "y", 5.0, 1),
            ("q", "x", 5.0, 1),
        ],
    )
    assert store_items.cooccurring_items(session, item_id="s") == [("x", 2), ("y", 2), ("z", 1)]
    assert store_items.like_counts(session, like_threshold=4.0) == [
        ("x", 3.0),
        ("s", 2.0),
        ("y", 1.0),
    ]
    assert store_items.item_metadata(session) == {}


def test_migration_0003_up_and_down_keeps_every_item(db_url: str, tmp_path) -> None:
    """0002 -> head (items active, created null) -> 0002 (items intact) on a fresh database."""
    from alembic import command

    from recommender.store.migrate import alembic_config

    sqlite = db_url.startswith("sqlite")
    url = (
        testing.create_sqlite_database(tmp_path, migrate=False)
        if sqlite
        else testing.create_postgres_database("recommender_items_migrate", migrate=False)
    )
    config = alembic_config(url)
    engine = create_engine(url)
    rows = [
        ("a", "A", '{"genres": ["x"]}', "2026-01-01 00:00:00+00:00"),
        ("b", None, None, "2026-01-02 00:00:00+00:00"),
    ]

    def stored() -> list[tuple]:
        with engine.connect() as connection:
            query = "SELECT item_id, title FROM items ORDER BY item_id"
            return [tuple(row) for row in connection.execute(text(query))]

    try:
        command.upgrade(config, "0002")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO items (item_id, title, metadata, updated_at) "
                    "VALUES (:i, :t, :m, :u)"
                ),
                [dict(zip("itmu", row, strict=True)) for row in rows],
            )
        command.upgrade(config, "head")
        with engine.connect() as connection:
            states = connection.execute(
                text("SELECT item_id, active, created FROM items ORDER BY item_id")
            ).all()
        assert [(i, bool(a), c) for i, a, c in states] == [("a", True, None), ("b", True, None)]
        indexes = {index["name"] for index in inspect(engine).get_indexes("items")}
        assert "ix_items_retired" in indexes
        command.downgrade(config, "0002")
        assert stored() == [("a", "A"), ("b", None)]
        columns = {c["name"] for c in inspect(engine).get_columns("items")}
        assert "active" not in columns and "created" not in columns
        command.upgrade(config, "head")
    finally:
        engine.dispose()
        if not sqlite:
            testing.drop_postgres_database(url)


def test_every_item_write_changes_the_catalogue_fingerprint_whatever_its_clock(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each committed item write bumps the catalogue version by one. A write stamped before
    the latest ``updated_at`` (a writer whose commit came after a later-stamped one, or a
    slow clock) still changes the fingerprint: with ``(rows, latest updated_at)`` alone it
    changed neither and serving processes missed it."""
    store.upsert_items(session, items=[store.ItemRow("a", title="A"), store.ItemRow("b")])
    session.commit()
    first = store_items.catalogue_fingerprint(session)
    store_items.set_item_active(session, item_id="b", active=False)
    session.commit()
    second = store_items.catalogue_fingerprint(session)
    assert second[0] == first[0] + 1 and second != first
    earlier = datetime(2000, 1, 1)  # older than every stamp so far
    monkeypatch.setattr(store_items, "utcnow", lambda: earlier)
    store.upsert_items(session, items=[store.ItemRow("a", title="A, renamed")])
    session.commit()
    third = store_items.catalogue_fingerprint(session)
    assert third[1:] == second[1:]  # same rows, same latest stamp ...
    assert third[0] == second[0] + 1  # ... but one more write
    store.upsert_items(session, items=[])  # nothing written: nothing counted
    session.commit()
    assert store_items.catalogue_fingerprint(session) == third
