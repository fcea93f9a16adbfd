"""PATCH /v1/items/{item_id} changes only the fields the body carries (PUT replaces the item);
on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

TOY = {"title": "Toy Story", "metadata": {"year": 1995, "genres": ["Animation", "Comedy"]}}


def _item(client: TestClient, item_id: str) -> dict:
    response = client.get(f"/v1/items/{item_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_retiring_with_patch_keeps_the_title_and_metadata_where_put_replaces_them(
    client: TestClient,
) -> None:
    assert client.put("/v1/items/toy", json=TOY).status_code == 200
    response = client.patch("/v1/items/toy", json={"active": False})
    assert response.status_code == 200, response.text
    retired = {"item_id": "toy", **TOY, "active": False}
    assert response.json() == retired
    assert _item(client, "toy") == retired
    response = client.patch("/v1/items/toy", json={"active": True})
    assert response.json() == {"item_id": "toy", **TOY}
    # PUT is a replacement: what the body leaves out is gone (documented).
    assert client.put("/v1/items/toy", json={"active": False}).json() == {
        "item_id": "toy",
        "title": None,
        "metadata": None,
        "active": False,
    }


def test_metadata_merges_key_by_key_and_the_rest_is_kept(client: TestClient) -> None:
    original = {"year": 1995, "genres": ["Animation"], "extra": {"a": 1, "b": 2}}
    body = {"title": "Toy Story", "metadata": original, "created": 1000}
    assert client.put("/v1/items/toy", json=body).status_code == 200
    patch = {"metadata": {"genres": None, "extra": {"b": None, "c": [3]}, "lang": "en"}}
    response = client.patch("/v1/items/toy", json=patch)
    assert response.status_code == 200, response.text
    expected = {
        "item_id": "toy",
        "title": "Toy Story",
        "metadata": {"year": 1995, "extra": {"a": 1, "c": [3]}, "lang": "en"},
        "created": 1000,
    }
    assert response.json() == expected
    assert _item(client, "toy") == expected
    # The metadata filters see the merged object at once.
    rating = {"user_id": "u", "item_id": "toy", "rating": 5}
    assert client.post("/v1/ratings", json=rating).status_code == 200
    listed = client.get("/v1/items/popular", params={"where": "lang:en"}).json()["items"]
    assert [entry["item_id"] for entry in listed] == ["toy"]


def test_null_removes_the_title_or_all_metadata_and_keeps_active_and_created(
    client: TestClient,
) -> None:
    body = {**TOY, "active": False, "created": 7}
    assert client.put("/v1/items/toy", json=body).status_code == 200
    response = client.patch("/v1/items/toy", json={"title": None, "active": None, "created": None})
    assert response.json() == {
        "item_id": "toy",
        "title": None,
        "metadata": TOY["metadata"],
        "active": False,
        "created": 7,
    }
    response = client.patch("/v1/items/toy", json={"metadata": None, "title": "Toy"})
    assert response.json() == {
        "item_id": "toy",
        "title": "Toy",
        "metadata": None,
        "active": False,
        "created": 7,
    }
    assert client.patch("/v1/items/toy", json={}).json() == response.json()


def test_an_item_known_only_from_ratings_gets_a_row_and_an_unknown_one_is_404(
    client: TestClient,
) -> None:
    assert client.get("/v1/items/rated").status_code == 404  # no row yet
    rating = {"user_id": "u", "item_id": "rated", "rating": 4}
    assert client.post("/v1/ratings", json=rating).status_code == 200
    response = client.patch("/v1/items/rated", json={"metadata": {"a": 1}})
    assert response.json() == {"item_id": "rated", "title": None, "metadata": {"a": 1}}
    missing = client.patch("/v1/items/nope", json={"title": "x"})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "no item 'nope'"
    assert client.get("/v1/items/nope").status_code == 404  # nothing was written


@pytest.mark.parametrize(
    ("body", "field", "value"),
    [
        ({"active": "maybe"}, "active", "maybe"),
        ({"created": -1}, "created", -1),
        ({"title": "a\u0000b"}, "title", "a\u0000b"),
        ({"metadata": {"deep": {"bad": "x\u0000"}}}, "metadata.deep.bad", "x\u0000"),
        ({"metadata": [1, 2]}, "metadata", [1, 2]),
        ({"colour": "red"}, "colour", "red"),
        ({"item_id": "other"}, "item_id", "other"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_value_and_changes_nothing(
    client: TestClient, body: dict, field: str, value: object
) -> None:
    assert client.put("/v1/items/toy", json=TOY).status_code == 200
    response = client.patch("/v1/items/toy", json=body)
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == field
    assert error["value"] == value
    assert error["message"].startswith(f"{field}: ")
    assert _item(client, "toy") == {"item_id": "toy", **TOY}


def test_patch_waits_for_another_sqlite_writer_instead_of_failing(
    client: TestClient, db_url: str
) -> None:
    """The patch reads the item, then writes: on SQLite it takes the write lock first, or a
    writer that commits in between makes it fail at once with "database is locked" (503)."""
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite only: PostgreSQL locks the row (SELECT ... FOR UPDATE) and waits")
    assert client.put("/v1/items/toy", json=TOY).status_code == 200
    other = sqlite3.connect(
        make_url(db_url).database, isolation_level=None, check_same_thread=False
    )
    other.execute("BEGIN IMMEDIATE")
    other.execute(
        "INSERT INTO ratings (user_id, item_id, value, timestamp) VALUES ('v', 'toy', 3, 0)"
    )

    def commit_later() -> None:
        time.sleep(0.5)
        other.execute("COMMIT")

    thread = threading.Thread(target=commit_later)
    thread.start()
    try:
        response = client.patch("/v1/items/toy", json={"metadata": {"lang": "en"}})
    finally:
        thread.join()
        other.close()
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {**TOY["metadata"], "lang": "en"}


def test_two_concurrent_patches_of_an_only_rated_item_both_count(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first patch stops after its write, before committing; the second starts then. Both
    metadata keys are kept: the second waits for the first's row (PATCH writes a bare row
    for an item that is only rated before locking it). Before, on PostgreSQL, both found no
    row, merged into nothing, and the second write dropped the first's key."""
    from recommender import store

    rating = {"user_id": "u", "item_id": "rated", "rating": 4}
    assert client.post("/v1/ratings", json=rating).status_code == 200
    real = store.upsert_items
    written, go = threading.Event(), threading.Event()

    def first_waits(session, *, items):
        count = real(session, items=items)
        if not written.is_set():
            written.set()
            assert go.wait(30)
        return count

    monkeypatch.setattr(store, "upsert_items", first_waits)
    answers: dict[str, int] = {}

    def patch(key: str) -> None:
        response = client.patch("/v1/items/rated", json={"metadata": {key: 1}})
        answers[key] = response.status_code

    first = threading.Thread(target=patch, args=("a",))
    first.start()
    assert written.wait(30)
    second = threading.Thread(target=patch, args=("b",))
    second.start()
    second.join(timeout=0.5)  # it waits for the first's row (before: for its key, then won)
    go.set()
    first.join(30)
    second.join(30)
    assert answers == {"a": 200, "b": 200}
    assert _item(client, "rated")["metadata"] == {"a": 1, "b": 1}
