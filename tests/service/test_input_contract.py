"""Valid JSON that no database stores faithfully is refused with 422 naming the field, and
nothing is written (issue 10, "Input that is valid JSON but breaks the service"). Every case
runs on SQLite and PostgreSQL: before the fix, NUL gave 500 on PostgreSQL and 200 on SQLite,
lone surrogates a plain-text 500 (and, in metadata, a row that could never be read back),
NaN/1e400 a 500 on PostgreSQL and a silent null on SQLite."""

from __future__ import annotations

import pytest
from service_helpers import ADMIN

JSON = {"content-type": "application/json"}
PROBLEM = "application/problem+json"


def assert_refused(response, field: str, *words: str) -> dict:
    """422 problem+json whose single field error names ``field``; returns that error."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 422 and body["title"] and body["type"] == "about:blank"
    (error,) = body["errors"]
    assert error["field"] == field, error
    for word in words:
        assert word in error["message"], error
    assert error["message"] in body["detail"]
    return error


# Raw JSON text: "\ud800" is a lone surrogate, "\u0000" a NUL (both valid JSON escapes).
@pytest.mark.parametrize(
    ("body", "field", "word"),
    [
        (rb'{"user_id": "a\ud800", "item_id": "i1", "rating": 3}', "user_id", "surrogate"),
        (rb'{"user_id": "u1", "item_id": "\udfff", "rating": 3}', "item_id", "surrogate"),
        (rb'{"user_id": "a\u0000b", "item_id": "i1", "rating": 3}', "user_id", "NUL"),
        (rb'{"user_id": "u1", "item_id": "\u0000", "rating": 3}', "item_id", "NUL"),
        (
            rb'{"ratings": [{"user_id": "u1", "item_id": "i\u0000", "rating": 3}]}',
            "ratings[0].item_id",
            "NUL",
        ),
        (rb'{"user_id": "a/b", "item_id": "i1", "rating": 3}', "user_id", "'/'"),
    ],
)
def test_unstorable_ids_in_ratings_are_refused(client, body, field, word):
    response = client.post("/v1/ratings", content=body, headers=JSON)
    assert_refused(response, field, word)
    assert client.get("/v1/users/u1/ratings").json()["items"] == []


@pytest.mark.parametrize(
    ("path", "body", "field", "word"),
    [
        ("/v1/items/i1", rb'{"title": "Toy\ud800"}', "title", "surrogate"),
        ("/v1/items/i1", rb'{"title": "Toy\u0000"}', "title", "NUL"),
        (
            "/v1/items/i1",
            rb'{"metadata": {"tags": ["a", "\ud83d"]}}',
            "metadata.tags[1]",
            "surrogate",
        ),
        ("/v1/items/i1", rb'{"metadata": {"k\u0000": 1}}', "metadata.k\u0000", "NUL"),
        ("/v1/items/i1", rb'{"metadata": {"score": NaN}}', "metadata.score", "finite"),
        ("/v1/items/i1", rb'{"metadata": {"a": {"b": 1e400}}}', "metadata.a.b", "finite"),
        ("/v1/items/i1", rb'{"metadata": {"a": -Infinity}}', "metadata.a", "finite"),
        ("/v1/items/%00", rb'{"title": "x"}', "item_id", "NUL"),
    ],
)
def test_unstorable_items_are_refused_and_nothing_is_stored(client, path, body, field, word):
    response = client.put(path, content=body, headers=JSON)
    assert_refused(response, field, word)
    # Nothing was written: the item does not exist (and every later read works).
    assert client.get("/v1/items/i1").status_code == 404


def test_unstorable_items_in_a_batch_refuse_the_whole_batch(client):
    body = (
        rb'{"items": [{"item_id": "ok", "title": "fine"},'
        rb' {"item_id": "bad", "metadata": {"year": 1e400}}]}'
    )
    assert_refused(
        client.post("/v1/items", content=body, headers=JSON), "items[1].metadata.year", "finite"
    )
    assert client.get("/v1/items/ok").status_code == 404


def test_a_lone_surrogate_never_makes_a_stored_item_unreadable(client):
    assert client.put("/v1/items/i1", json={"title": "Toy Story"}).status_code == 200
    refused = client.put(
        "/v1/items/i1", content=rb'{"title": "x", "metadata": {"a": "\ud800"}}', headers=JSON
    )
    assert refused.status_code == 422
    item = client.get("/v1/items/i1")
    assert item.status_code == 200 and item.json()["title"] == "Toy Story"


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", "/v1/users/%00/ratings", "user_id"),
        ("DELETE", "/v1/users/%00", "user_id"),
        ("GET", "/v1/users/a%00/recommendations", "user_id"),
        ("GET", "/v1/items/%00", "item_id"),
        ("GET", "/v1/users/u1/ratings?cursor=AA", "cursor"),  # base64 of one NUL byte
    ],
)
def test_nul_in_paths_and_cursors_is_refused(client, method, path, field):
    assert_refused(client.request(method, path), field)


def test_nul_in_prediction_ids_is_refused(client):
    response = client.get("/v1/users/u1/predictions", params={"item_ids": "i1,a\x00"})
    assert_refused(response, "item_ids[1]", "NUL")


def test_ids_with_a_slash_are_refused_at_write_time(client):
    """Documented choice (README): ids never contain "/", so every stored id is addressable;
    before, "a/b" was stored and DELETE /v1/users/a%2Fb answered 404, leaving the rows."""
    assert_refused(
        client.post("/v1/ratings", json={"user_id": "a/b", "item_id": "i1", "rating": 4}),
        "user_id",
        "'/'",
    )
    assert_refused(
        client.post("/v1/items", json={"items": [{"item_id": "https://x.org/1"}]}),
        "items[0].item_id",
    )
    # What is stored can be erased through its URL: here ":" and "?" are fine, encoded.
    stored = {"user_id": "ext:alice?x", "item_id": "i1", "rating": 4}
    assert client.post("/v1/ratings", json=stored).status_code == 200
    deleted = client.delete("/v1/users/ext%3Aalice%3Fx")
    assert deleted.status_code == 200 and deleted.json()["deleted"] == 1


def test_malformed_json_says_where_it_breaks(client):
    body = b'{"user_id": "u1",\n "item_id": i1, "rating": 4}'
    error = assert_refused(client.post("/v1/ratings", content=body, headers=JSON), "body")
    assert error["type"] == "json_invalid"
    assert "line 2 column 13" in error["message"], error
    assert "Expecting value" in error["message"]


def test_every_error_status_answers_problem_json(make_client):
    with make_client(max_body_bytes=1000, api_keys=["k1"]) as client:
        key = {"X-API-Key": "k1"}
        answers = {
            401: client.get("/v1/users/u1/ratings"),
            404: client.get("/v1/items/nope", headers=key),
            405: client.patch("/v1/ratings", headers=key),
            413: client.post("/v1/ratings", content=b"x" * 2000, headers=key | JSON),
            422: client.get("/v1/users/u1/ratings?limit=0", headers=key),
        }
        wrong_admin = client.get("/v1/admin/models", headers={"Authorization": "Bearer no"})
    assert wrong_admin.status_code == 401
    assert wrong_admin.headers["www-authenticate"] == "Bearer"  # headers survive
    assert wrong_admin.headers["content-type"] == PROBLEM
    for status, response in answers.items():
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == PROBLEM, status
        body = response.json()
        assert body["status"] == status and body["type"] == "about:blank"
        assert isinstance(body["detail"], str) and body["detail"]
        assert ("errors" in body) == (status == 422)
    assert answers[401].json()["instance"] == "/v1/users/u1/ratings"


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        # Over the INTEGER column: OverflowError (SQLite) / out of range (PostgreSQL), 500.
        ("GET", "/v1/admin/jobs/248342032825253658624", "job_id"),
        ("GET", "/v1/admin/jobs/2147483648", "job_id"),
        ("POST", "/v1/admin/models/v%00/activate", "version"),
    ],
)
def test_admin_paths_out_of_range_are_refused(client, method, path, field):
    assert_refused(client.request(method, path, headers=ADMIN), field)
