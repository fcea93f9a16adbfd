"""The per-process title cache: when it expires or is invalidated, the next call reads again,
in one query, the ids asked for since the previous expiry (not one miss per batch after it),
on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from recommender import store
from recommender.service.serving import ItemTitles
from recommender.store import items as store_items


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = store.make_engine(db_url)
    yield store.make_session_factory(engine)
    engine.dispose()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The ids of every titles query the cache sends, in order."""
    sent: list[list[str]] = []
    real = store.item_titles

    def counted(session: Session, *, item_ids):
        ids = list(item_ids)
        sent.append(ids)
        return real(session, item_ids=ids)

    monkeypatch.setattr(store, "item_titles", counted)
    return sent


def _title(sessions: sessionmaker[Session], **titles: str | None) -> None:
    with store.unit_of_work(sessions) as session:
        store_items.upsert_items(
            session, items=[store.ItemRow(i, title=t) for i, t in titles.items()]
        )


def test_an_expired_cache_reads_every_id_it_held_again_in_one_query(sessions, queries) -> None:
    _title(sessions, a="A", b="B", c="C", n=None)
    clock = Clock()
    titles = ItemTitles(ttl_s=10, clock=clock)
    with sessions() as session:
        assert titles.get(session, ["a", "n"]) == {"a": "A"}
        assert titles.get(session, ["b", "a"]) == {"b": "B", "a": "A"}
        assert titles.get(session, ["a", "b", "n"]) == {"a": "A", "b": "B"}  # all cached
    assert queries == [["a", "n"], ["b"]]
    _title(sessions, a="A2", b=None, n="N")  # another process's writes: no invalidation
    clock.now += 9.9
    with sessions() as session:
        assert titles.get(session, ["a"]) == {"a": "A"}  # not expired yet
    assert len(queries) == 2
    clock.now += 0.1
    with sessions() as session:
        assert titles.get(session, ["c"]) == {"c": "C"}
        # One query: this call's miss first, then every id the cache held.
        assert queries[2:] == [["c", "a", "n", "b"]]
        assert titles.get(session, ["a", "b", "n", "c"]) == {"a": "A2", "n": "N", "c": "C"}
    assert len(queries) == 3


def test_an_invalidation_reads_the_cached_ids_again_on_the_next_call(sessions, queries) -> None:
    _title(sessions, a="A", b="B")
    titles = ItemTitles(ttl_s=600, clock=Clock())
    with sessions() as session:
        assert titles.get(session, ["a", "b"]) == {"a": "A", "b": "B"}
    _title(sessions, a="A2")
    titles.invalidate()
    titles.invalidate()  # a second one keeps what the first had to read again
    with sessions() as session:
        assert titles.get(session, ["z"]) == {}
        assert titles.get(session, ["a", "b", "z"]) == {"a": "A2", "b": "B"}
    assert queries == [["a", "b"], ["z", "a", "b"]]


def test_ids_nobody_asked_for_in_a_period_are_not_read_again(sessions, queries) -> None:
    _title(sessions, a="A", b="B", c="C", d="D")
    clock = Clock()
    titles = ItemTitles(ttl_s=10, clock=clock)
    with sessions() as session:
        titles.get(session, ["a", "b"])
        clock.now += 10
        assert titles.get(session, ["c"]) == {"c": "C"}  # reads a and b again: asked for
        clock.now += 10
        assert titles.get(session, ["d"]) == {"d": "D"}  # not a and b: not asked since
        assert titles.get(session, ["c", "d"]) == {"c": "C", "d": "D"}
    assert queries == [["a", "b"], ["c", "a", "b"], ["d", "c"]]


def test_at_most_reread_max_ids_are_read_again(
    sessions, queries, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ItemTitles, "REREAD_MAX", 2)
    _title(sessions, a="A", b="B", c="C", d="D")
    clock = Clock()
    titles = ItemTitles(ttl_s=10, clock=clock)
    with sessions() as session:
        titles.get(session, ["a", "b", "c"])
        titles.get(session, ["d"])  # past the bound: not noted
        clock.now += 10
        assert titles.get(session, ["d"]) == {"d": "D"}
        assert titles.get(session, ["a", "b"]) == {"a": "A", "b": "B"}  # read again
        assert titles.get(session, ["c"]) == {"c": "C"}  # the first two only: a miss
    assert queries == [["a", "b", "c"], ["d"], ["d", "a", "b"], ["c"]]


def test_no_cache_reads_every_call(sessions, queries) -> None:
    _title(sessions, a="A")
    titles = ItemTitles(ttl_s=0)
    with sessions() as session:
        for _ in range(2):
            assert titles.get(session, ["a", "a"]) == {"a": "A"}
    assert queries == [["a"], ["a"]]
