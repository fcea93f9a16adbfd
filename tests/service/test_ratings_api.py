"""POST /v1/ratings: upserts, all-or-nothing batches, and every kind of bad input."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from fastapi.testclient import TestClient
from service_helpers import live_server

from recommender.service import Settings


def stored(client: TestClient, user_id: str) -> dict[str, tuple[float, int]]:
    body = client.get(f"/v1/users/{user_id}/ratings", params={"limit": 1000}).json()
    return {r["item_id"]: (r["rating"], r["timestamp"]) for r in body["items"]}


def test_one_rating(client: TestClient) -> None:
    response = client.post(
        "/v1/ratings", json={"user_id": "u1", "item_id": "i1", "rating": 4.5, "timestamp": 1700}
    )
    assert response.status_code == 200
    assert response.json() == {"received": 1}
    assert stored(client, "u1") == {"i1": (4.5, 1700)}


def test_timestamp_defaults_to_the_server_clock(client: TestClient) -> None:
    import time

    before = int(time.time())
    client.post("/v1/ratings", json={"user_id": "u1", "item_id": "i1", "rating": 3})
    (_, stamp) = stored(client, "u1")["i1"]
    assert before <= stamp <= int(time.time()) + 1


def test_a_batch_and_upsert_of_an_existing_pair(client: TestClient) -> None:
    batch = {
        "ratings": [
            {"user_id": "u1", "item_id": "a", "rating": 1, "timestamp": 10},
            {"user_id": "u1", "item_id": "b", "rating": 2, "timestamp": 11},
            {"user_id": "u2", "item_id": "a", "rating": 5, "timestamp": 12},
        ]
    }
    assert client.post("/v1/ratings", json=batch).json() == {"received": 3}
    again = {"user_id": "u1", "item_id": "a", "rating": 4, "timestamp": 99}
    assert client.post("/v1/ratings", json=again).json() == {"received": 1}
    assert stored(client, "u1") == {"a": (4.0, 99), "b": (2.0, 11)}
    assert stored(client, "u2") == {"a": (5.0, 12)}


def test_a_batch_of_ten_thousand_is_accepted(client: TestClient) -> None:
    batch = {
        "ratings": [
            {"user_id": f"u{n % 50}", "item_id": f"i{n}", "rating": 1 + n % 5, "timestamp": n}
            for n in range(10_000)
        ]
    }
    assert client.post("/v1/ratings", json=batch).json() == {"received": 10_000}
    assert len(stored(client, "u7")) == 200


def _assert_names(response: httpx.Response, field: str, value_text: str) -> dict:
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == field
    assert field in error["message"] and value_text in error["message"]
    return error


BAD_ROW_CASES = [
    pytest.param({"rating": 7}, "ratings[1].rating", "rating=7", id="over-scale"),
    pytest.param({"rating": 0.5}, "ratings[1].rating", "rating=0.5", id="under-scale"),
    pytest.param({"rating": "high"}, "ratings[1].rating", "rating='high'", id="not-a-number"),
    pytest.param({"user_id": ""}, "ratings[1].user_id", "user_id=''", id="empty-id"),
    pytest.param({"item_id": "x" * 129}, "ratings[1].item_id", "item_id='xxx", id="129-char-id"),
    pytest.param({"colour": "red"}, "ratings[1].colour", "colour='red'", id="unknown-field"),
    pytest.param({"timestamp": -1}, "ratings[1].timestamp", "timestamp=-1", id="negative-time"),
]


@pytest.mark.parametrize(("change", "field", "value_text"), BAD_ROW_CASES)
def test_one_bad_row_refuses_the_whole_batch(
    client: TestClient, change: dict, field: str, value_text: str
) -> None:
    rows = [
        {"user_id": "u1", "item_id": "a", "rating": 3},
        {"user_id": "u1", "item_id": "b", "rating": 4} | change,
        {"user_id": "u1", "item_id": "c", "rating": 5},
    ]
    _assert_names(client.post("/v1/ratings", json={"ratings": rows}), field, value_text)
    assert stored(client, "u1") == {}


def test_nan_and_infinity_are_refused(client: TestClient) -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = f'{{"user_id": "u1", "item_id": "a", "rating": {literal}}}'
        response = client.post(
            "/v1/ratings", content=body, headers={"content-type": "application/json"}
        )
        error = _assert_names(response, "rating", "rating=")
        assert error["type"] == "finite_number"
        assert "finite" in error["message"]
    assert stored(client, "u1") == {}


def test_a_single_rating_out_of_scale_names_rating(client: TestClient) -> None:
    response = client.post("/v1/ratings", json={"user_id": "u", "item_id": "a", "rating": 5.5})
    error = _assert_names(response, "rating", "rating=5.5")
    assert error["value"] == 5.5 and "[1, 5]" in error["message"]


def test_missing_field_is_named(client: TestClient) -> None:
    response = client.post("/v1/ratings", json={"user_id": "u", "rating": 3})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["item_id"]
    assert response.json()["errors"][0]["message"] == "item_id is required"


def test_the_configured_scale_is_used(make_client) -> None:
    with make_client(rating_min=0, rating_max=10) as client:
        row = {"user_id": "u", "item_id": "a", "rating": 9}
        assert client.post("/v1/ratings", json=row).status_code == 200
        row["rating"] = 11
        _assert_names(client.post("/v1/ratings", json=row), "rating", "rating=11")


def test_a_batch_of_10001_is_refused_whole(client: TestClient) -> None:
    rows = [{"user_id": "u1", "item_id": f"i{n}", "rating": 3} for n in range(10_001)]
    response = client.post("/v1/ratings", json={"ratings": rows})
    error = _assert_names(response, "ratings", "10001")
    assert error["type"] == "too_long"
    assert stored(client, "u1") == {}


def test_an_empty_batch_is_refused(client: TestClient) -> None:
    _assert_names(client.post("/v1/ratings", json={"ratings": []}), "ratings", "ratings=[]")


def test_a_body_over_the_limit_is_413_before_parsing(make_client) -> None:
    with make_client(max_body_bytes=1000) as client:
        rows = [{"user_id": "u1", "item_id": f"i{n}", "rating": 3} for n in range(100)]
        response = client.post("/v1/ratings", json={"ratings": rows})
        assert response.status_code == 413
        assert "1000 bytes" in response.json()["detail"]
        assert stored(client, "u1") == {}


def test_a_streamed_body_over_the_limit_is_413(make_client) -> None:
    with make_client(max_body_bytes=1000) as client:
        rows = [{"user_id": "u1", "item_id": f"i{n}", "rating": 3} for n in range(100)]
        data = json.dumps({"ratings": rows}).encode()

        def chunks():  # no Content-Length: chunked transfer
            for start in range(0, len(data), 256):
                yield data[start : start + 256]

        response = client.post(
            "/v1/ratings", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert stored(client, "u1") == {}


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/v1/ratings", content=b'{"user_id": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_concurrent_writers_over_http_keep_every_last_value(settings: Settings) -> None:
    """Threads post overlapping batches to a real server: one row per pair, none lost, and
    each pair holds a value one of the threads wrote in its final round."""
    threads, rounds, users, items = 6, 4, 5, 8
    errors: list[str] = []
    with live_server(settings) as base_url:

        def writer(t: int) -> None:
            with httpx.Client(base_url=base_url, timeout=30) as http:
                for r in range(rounds):
                    rows = [
                        {
                            "user_id": f"u{u}",
                            "item_id": f"i{i}",
                            "rating": 1 + (t + r) % 5,
                            "timestamp": 100 * r + t,
                        }
                        for u in range(users)
                        for i in range(items)
                    ]
                    if t % 2:
                        rows.reverse()
                    response = http.post("/v1/ratings", json={"ratings": rows})
                    if response.status_code != 200:
                        errors.append(response.text)

        pool = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        assert errors == []
        with httpx.Client(base_url=base_url) as http:
            for u in range(users):
                body = http.get(f"/v1/users/u{u}/ratings", params={"limit": 1000}).json()
                assert sorted(r["item_id"] for r in body["items"]) == sorted(
                    f"i{i}" for i in range(items)
                )
                for row in body["items"]:
                    t, r = row["timestamp"] % 100, row["timestamp"] // 100
                    assert r == rounds - 1  # a final-round write survived
                    assert row["rating"] == 1 + (t + r) % 5  # value and timestamp agree
