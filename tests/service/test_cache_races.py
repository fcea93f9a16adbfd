"""The per-process caches (catalogue, popular list, titles) against writes that land while a
read is under way: what a write made visible stays visible, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from recommender import store
from recommender.service.catalogue import Catalogue
from recommender.service.serving import ItemTitles, PopularItems
from recommender.store import items as store_items


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = store.make_engine(db_url)
    yield store.make_session_factory(engine)
    engine.dispose()


def _stall_first_call(monkeypatch: pytest.MonkeyPatch, module, name: str):
    """Patch ``module.name`` so that its first call, after reading, waits for ``go``:
    returns ``(read, go)`` events (``read`` set once the first call has its result)."""
    real = getattr(module, name)
    read, go = threading.Event(), threading.Event()
    calls = 0

    def stalled(*args, **kwargs):
        nonlocal calls
        calls += 1
        out = real(*args, **kwargs)
        if calls == 1:
            read.set()
            assert go.wait(30)
        return out

    monkeypatch.setattr(module, name, stalled)
    return read, go


def test_a_catalogue_refresh_that_read_earlier_never_installs_last(
    sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refresh 1 reads (no item retired) and stalls; x is retired and refresh 2 runs. The
    catalogue ends with x retired: refresh 2 waits for refresh 1 and installs after it
    (before, refresh 2 installed {x} and refresh 1 then put back its older empty set)."""
    catalogue = Catalogue(sessions)
    catalogue.refresh()
    read, go = _stall_first_call(monkeypatch, store_items, "item_metadata")
    first = threading.Thread(target=catalogue.refresh, kwargs={"force": True})
    first.start()
    assert read.wait(30)
    with store.unit_of_work(sessions) as session:
        store_items.set_item_active(session, item_id="x", active=False)
    second = threading.Thread(target=catalogue.refresh)
    second.start()
    second.join(timeout=0.5)  # before: done by now, with {x} installed
    go.set()
    first.join(30)
    second.join(30)
    assert catalogue.retired == {"x"}


def _rate(sessions, *rows: tuple[str, str, float]) -> None:
    with store.unit_of_work(sessions) as session:
        store.upsert_ratings(session, ratings=[store.RatingRow(u, i, v, 0) for u, i, v in rows])


def test_an_invalidation_during_a_popular_refill_is_not_lost(
    sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refill reads the likes, then a like is deleted and the list invalidated before the
    refill stores its list: that list is served once, and the next call reads again (before,
    the refill's expiry overwrote the invalidation and the deleted like stayed for ttl_s)."""
    _rate(sessions, ("u1", "a", 5), ("u2", "a", 5), ("u1", "b", 5))
    popular = PopularItems(like_threshold=4, ttl_s=600, sessions=sessions)
    read, go = _stall_first_call(monkeypatch, store, "popular_items")
    answers: list = []
    with sessions() as session:
        refill = threading.Thread(target=lambda: answers.append(popular.top(session, k=5)))
        refill.start()
        assert read.wait(30)
        with store.unit_of_work(sessions) as writer:
            store_items.delete_rating(writer, user_id="u1", item_id="b")
        popular.invalidate()
        go.set()
        refill.join(30)
        assert [item for item, _ in answers[0]] == ["a", "b"]  # what it read
        assert [item for item, _ in popular.top(session, k=5)] == ["a"]


def test_titles_are_read_outside_the_callers_older_snapshot(sessions) -> None:
    """A caller whose transaction began before a title changed (a recommendation batch's, on
    SQLite) still gets, and caches, the new title after the invalidation."""
    with store.unit_of_work(sessions) as session:
        store_items.upsert_items(session, items=[store.ItemRow("i1", title="Old")])
    titles = ItemTitles(ttl_s=600, sessions=sessions)
    with sessions() as batch:
        assert store_items.item_titles(batch, item_ids=["i1"]) == {"i1": "Old"}  # begins
        with store.unit_of_work(sessions) as writer:
            store_items.upsert_items(writer, items=[store.ItemRow("i1", title="New")])
        titles.invalidate()
        assert titles.get(batch, ["i1"]) == {"i1": "New"}
    with sessions() as later:
        assert titles.get(later, ["i1"]) == {"i1": "New"}
