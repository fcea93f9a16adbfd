"""Recommendations: popular fallback, fold-in of new ratings, never a rated item."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from service_helpers import ADMIN, post_generated_ratings, train


def _rate(client: TestClient, user_id: str, items: dict[str, float]) -> None:
    rows = [{"user_id": user_id, "item_id": i, "rating": r} for i, r in items.items()]
    assert client.post("/v1/ratings", json={"ratings": rows}).status_code == 200


@pytest.fixture
def trained(client: TestClient) -> tuple[TestClient, dict[str, dict[str, float]], str]:
    by_user = post_generated_ratings(client)
    job = train(client)
    assert job["status"] == "succeeded", job["error"]
    return client, by_user, job["model_version"]


def test_before_any_model_everyone_gets_the_most_liked_items(client: TestClient) -> None:
    _rate(client, "a", {"x": 5, "y": 4, "z": 1})
    _rate(client, "b", {"x": 4, "w": 5})
    _rate(client, "c", {"x": 2, "y": 5})
    client.put("/v1/items/x", json={"title": "Item X"})
    assert client.get("/v1/users/new/recommendations", params={"k": 3}).json() == {
        "user_id": "new",
        "model_version": None,
        "strategy": "popular",
        # Scored as probabilities, like the RBM's: likes / users with ratings (3 users).
        "items": [
            {"item_id": "x", "score": 2 / 3, "title": "Item X"},
            {"item_id": "y", "score": 2 / 3},
            {"item_id": "w", "score": 1 / 3},
        ],
    }
    # A user with ratings but no model yet: popular, minus what they rated.
    body = client.get("/v1/users/a/recommendations", params={"k": 3}).json()
    assert body["strategy"] == "popular" and body["model_version"] is None
    assert [i["item_id"] for i in body["items"]] == ["w"]


def test_k_is_validated(client: TestClient) -> None:
    for k in (0, 1001, "ten"):
        response = client.get("/v1/users/u/recommendations", params={"k": k})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "k"


def test_a_user_with_no_ratings_gets_popular_items_with_the_model_version(trained) -> None:
    client, _, version = trained
    body = client.get("/v1/users/stranger/recommendations", params={"k": 4}).json()
    assert body["strategy"] == "popular" and body["model_version"] == version
    assert len(body["items"]) == 4
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_recommendations_never_include_a_rated_item(trained) -> None:
    client, by_user, version = trained
    for user_id, rated in by_user.items():
        body = client.get(f"/v1/users/{user_id}/recommendations", params={"k": 10}).json()
        assert body["strategy"] == "rbm" and body["model_version"] == version
        recommended = [item["item_id"] for item in body["items"]]
        assert len(recommended) == min(10, 30 - len(rated))
        assert not set(recommended) & set(rated)
        scores = [item["score"] for item in body["items"]]
        assert scores == sorted(scores, reverse=True)


def test_ratings_posted_after_training_are_folded_in(trained) -> None:
    client, _, version = trained
    first = client.get("/v1/users/late/recommendations", params={"k": 5}).json()
    assert first["strategy"] == "popular"
    _rate(client, "late", {"i0": 5, "i1": 5})
    second = client.get("/v1/users/late/recommendations", params={"k": 5}).json()
    assert second["strategy"] == "rbm" and second["model_version"] == version
    assert not {"i0", "i1"} & {i["item_id"] for i in second["items"]}
    top = second["items"][0]["item_id"]
    _rate(client, "late", {top: 1})  # the user disliked our top pick
    third = client.get("/v1/users/late/recommendations", params={"k": 5}).json()
    assert top not in {i["item_id"] for i in third["items"]}
    assert third["items"] != second["items"]


def test_deleting_a_user_makes_them_cold_start_at_once(trained) -> None:
    client, _, _ = trained
    assert client.get("/v1/users/u3/recommendations").json()["strategy"] == "rbm"
    client.delete("/v1/users/u3")
    assert client.get("/v1/users/u3/recommendations").json()["strategy"] == "popular"


def test_anonymous_recommendations_from_the_body(trained) -> None:
    client, _, version = trained
    body = {"ratings": [{"item_id": "i0", "rating": 5}, {"item_id": "i2", "rating": 4}], "k": 3}
    response = client.post("/v1/recommendations", json=body).json()
    assert response["strategy"] == "rbm" and response["model_version"] == version
    assert response["user_id"] is None
    assert len(response["items"]) == 3
    assert not {"i0", "i2"} & {i["item_id"] for i in response["items"]}
    empty = client.post("/v1/recommendations", json={"k": 2}).json()
    assert empty["strategy"] == "popular" and len(empty["items"]) == 2
    bad = client.post("/v1/recommendations", json={"ratings": [{"item_id": "i0", "rating": 9}]})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "ratings[0].rating"


def test_predictions_give_like_probabilities(trained) -> None:
    client, by_user, version = trained
    response = client.get("/v1/users/u0/predictions", params={"item_ids": "i1,i2,unknown"})
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == "u0" and body["model_version"] == version
    assert [p["item_id"] for p in body["items"]] == ["i1", "i2", "unknown"]
    assert all(0.0 <= p["probability"] <= 1.0 for p in body["items"][:2])
    assert body["items"][2]["probability"] is None
    response = client.get("/v1/users/u0/predictions", params={"item_ids": "i1,," + "x" * 129})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "item_ids[1]"


def test_predictions_before_any_model_are_409(client: TestClient) -> None:
    response = client.get("/v1/users/u0/predictions", params={"item_ids": "i1"})
    assert response.status_code == 409
    assert "/v1/admin/retrain" in response.json()["detail"]


def test_the_admin_models_list_is_admin_only(trained) -> None:
    client, _, _ = trained
    assert client.get("/v1/admin/models").status_code == 401
    assert client.get("/v1/admin/models", headers=ADMIN).status_code == 200
