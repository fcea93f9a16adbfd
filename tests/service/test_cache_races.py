"""The per-process caches (catalogue, popular list, titles) against writes that land while a
read is under way: what a write made visible stays visible, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from service_helpers import offline_model
from sqlalchemy.orm import Session, sessionmaker

from recommender import store
from recommender.service.catalogue import Catalogue
from recommender.service.serving import (
    ItemTitles,
    LoadedModel,
    ModelHolder,
    PopularItems,
    RecommendationRequest,
    recommend_many,
)
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
    popular = PopularItems(like_threshold=4, ttl_s=600)
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
    with sessions() as later:  # the next request
        assert [item for item, _ in popular.top(later, k=5)] == ["a"]


def test_a_batch_names_its_items_after_a_title_changed_during_scoring(
    sessions, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A title changes (and the cache is invalidated) while a batch is being scored: the
    batch names its items with the new title, and caches that. On SQLite the batch's read
    transaction began with the ratings query; recommend_many ends it before naming the
    items (before, the old title was read in that snapshot and kept for the cache's TTL)."""
    model = offline_model(tmp_path / "m")
    holder = ModelHolder(sessions, tmp_path)
    holder.install(LoadedModel("m", model))
    items = list(model.item_ids)
    with store.unit_of_work(sessions) as session:
        store.upsert_ratings(session, ratings=[store.RatingRow("u", items[0], 5.0, 0)])
        store_items.upsert_items(session, items=[store.ItemRow(i, title="Old") for i in items])
    titles = ItemTitles(ttl_s=600)
    real = model.recommend

    def renamed_while_scoring(*args, **kwargs):
        with store.unit_of_work(sessions) as writer:
            store_items.upsert_items(writer, items=[store.ItemRow(i, title="New")
                                                    for i in items])
        titles.invalidate()
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "recommend", renamed_while_scoring)
    with sessions() as batch:
        (result,) = recommend_many(batch, [RecommendationRequest(k=3, user_id="u")],
                                   holder=holder, popular=PopularItems(like_threshold=4,
                                                                       ttl_s=0),
                                   titles=titles)
    assert result.strategy == "rbm" and len(result.items) == 3
    assert set(result.titles.values()) == {"New"}
    with sessions() as later:
        assert set(titles.get(later, [i for i, _ in result.items]).values()) == {"New"}
