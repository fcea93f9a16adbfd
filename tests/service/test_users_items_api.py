"""A user's ratings (paging, erasure) and the item catalogue."""

from __future__ import annotations

from fastapi.testclient import TestClient


def _post(client: TestClient, user_id: str, items: dict[str, float]) -> None:
    rows = [
        {"user_id": user_id, "item_id": item, "rating": rating, "timestamp": 1000 + n}
        for n, (item, rating) in enumerate(items.items())
    ]
    assert client.post("/v1/ratings", json={"ratings": rows}).status_code == 200


def test_ratings_come_back_page_by_page(client: TestClient) -> None:
    _post(client, "u1", {"c": 3, "a": 1, "b": 2, "e": 5, "d": 4})
    first = client.get("/v1/users/u1/ratings", params={"limit": 2}).json()
    assert first["items"] == [
        {"item_id": "a", "rating": 1.0, "timestamp": 1001},
        {"item_id": "b", "rating": 2.0, "timestamp": 1002},
    ]
    second = client.get(
        "/v1/users/u1/ratings", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [r["item_id"] for r in second["items"]] == ["c", "d"]
    third = client.get(
        "/v1/users/u1/ratings", params={"limit": 2, "cursor": second["next_cursor"]}
    ).json()
    assert third == {
        "items": [{"item_id": "e", "rating": 5.0, "timestamp": 1003}],
        "next_cursor": None,
    }


def test_unknown_user_has_no_ratings(client: TestClient) -> None:
    assert client.get("/v1/users/nobody/ratings").json() == {"items": [], "next_cursor": None}


def test_limit_and_cursor_are_validated(client: TestClient) -> None:
    response = client.get("/v1/users/u1/ratings", params={"limit": 1001})
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "limit" and "limit='1001'" in error["message"]
    response = client.get("/v1/users/u1/ratings", params={"cursor": "!!"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "cursor"


def test_a_129_character_user_id_in_the_path_is_refused(client: TestClient) -> None:
    response = client.get(f"/v1/users/{'u' * 129}/ratings")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "user_id"


def test_deleting_a_user_erases_their_ratings_only(client: TestClient) -> None:
    _post(client, "u1", {"a": 4, "b": 5})
    _post(client, "u2", {"a": 2})
    assert client.delete("/v1/users/u1").json() == {"user_id": "u1", "deleted": 2}
    assert client.get("/v1/users/u1/ratings").json()["items"] == []
    assert len(client.get("/v1/users/u2/ratings").json()["items"]) == 1
    assert client.delete("/v1/users/u1").json() == {"user_id": "u1", "deleted": 0}


def test_put_and_bulk_post_items(client: TestClient) -> None:
    response = client.put("/v1/items/i1", json={"title": "Toy Story", "metadata": {"year": 1995}})
    assert response.status_code == 200
    assert response.json() == {"item_id": "i1", "title": "Toy Story", "metadata": {"year": 1995}}
    bulk = {
        "items": [
            {"item_id": "i1", "title": "Toy Story (1995)"},
            {"item_id": "i2", "title": "GoldenEye", "metadata": {"genres": ["Action"]}},
        ]
    }
    assert client.post("/v1/items", json=bulk).json() == {"received": 2}
    assert client.get("/v1/items/i1").json() == {
        "item_id": "i1",
        "title": "Toy Story (1995)",
        "metadata": None,
    }
    assert client.get("/v1/items/i2").json()["metadata"] == {"genres": ["Action"]}
    assert client.get("/v1/items/nope").status_code == 404


def test_bad_items_are_refused_whole(client: TestClient) -> None:
    bulk = {"items": [{"item_id": "ok", "title": "Fine"}, {"item_id": "", "title": "Bad"}]}
    response = client.post("/v1/items", json=bulk)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "items[1].item_id"
    assert client.get("/v1/items/ok").status_code == 404
    response = client.put("/v1/items/x", json={"title": "T", "year": 1999})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "year"
