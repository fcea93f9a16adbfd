"""Items called "new" or "popular" cannot be written: GET /v1/items/new and /v1/items/popular
are the lists, so GET /v1/items/{item_id} could never read them. Refused with a 422 naming the
field and the value wherever an item id is written, before anything is stored; on SQLite and
PostgreSQL. Other ids that merely look alike are fine."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


def _refused(response, field: str, value: str) -> None:
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == field
    assert error["value"] == value
    assert error["type"] == "reserved_item_id"
    assert error["message"] == (
        f"{field}: item ids must not be 'new' or 'popular': GET /v1/items/new and "
        f"/v1/items/popular are the lists, so such an item could not be read. "
        f"Received: {field.rsplit('.', 1)[-1]}={value!r}"
    )


@pytest.mark.parametrize("reserved", ["new", "popular"])
def test_every_write_of_a_reserved_item_id_is_refused_and_nothing_is_stored(
    client: TestClient, reserved: str
) -> None:
    rating = {"user_id": "u1", "item_id": reserved, "rating": 4}
    _refused(client.post("/v1/ratings", json=rating), "item_id", reserved)
    batch = {"ratings": [{"user_id": "u1", "item_id": "ok", "rating": 4}, rating]}
    _refused(client.post("/v1/ratings", json=batch), "ratings[1].item_id", reserved)
    _refused(client.put(f"/v1/items/{reserved}", json={"title": "x"}), "item_id", reserved)
    items = {"items": [{"item_id": "ok"}, {"item_id": reserved, "title": "x"}]}
    _refused(client.post("/v1/items", json=items), "items[1].item_id", reserved)
    assert client.get("/v1/users/u1/ratings").json()["items"] == []
    assert client.get("/v1/items").json()["items"] == []


def test_ids_that_only_look_reserved_are_written_and_read(client: TestClient) -> None:
    for item_id in ["New", "popular ", "new2", "newest"]:
        assert client.put(f"/v1/items/{item_id}", json={"title": item_id}).status_code == 200
        assert client.get(f"/v1/items/{item_id}").json()["title"] == item_id
    # A user may be called "new": no user route is a fixed path.
    rating = {"user_id": "new", "item_id": "New", "rating": 4}
    assert client.post("/v1/ratings", json=rating).status_code == 200
    assert len(client.get("/v1/users/new/ratings").json()["items"]) == 1


def test_the_openapi_document_says_so(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for schema in ("RatingIn", "ItemEntry"):
        item_id = doc["components"]["schemas"][schema]["properties"]["item_id"]
        assert item_id["not"] == {"enum": ["new", "popular"]}, schema
        assert "not 'new' nor 'popular'" in item_id["description"]
    (path,) = doc["paths"]["/v1/items/{item_id}"]["put"]["parameters"]
    assert path["schema"]["not"] == {"enum": ["new", "popular"]}
