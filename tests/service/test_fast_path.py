"""The hot route's fast path (``FastUserRecommendations``): a plain
``GET /v1/users/{user_id}/recommendations[?k=N]`` is answered without the framework's layers,
and must answer exactly what the route answers; anything else goes to the route.

The route itself is reached with a query the fast path does not take (``explain=false``, which
changes nothing in the answer), so each check compares the two on the same app and data.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from service_helpers import post_generated_ratings, train

from recommender.service import create_app
from recommender.service.routers import recommendations
from recommender.store import make_engine


@pytest.fixture
def route_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The query strings the framework's route parsed (it calls _query_options; the fast path
    never does)."""
    calls: list[str] = []
    parse = recommendations._query_options

    def counted(request):
        calls.append(request.url.query)
        return parse(request)

    monkeypatch.setattr(recommendations, "_query_options", counted)
    return calls


def _both(client: TestClient, user: str, query: str) -> tuple:
    """(fast path's response, the route's response) for the same request."""
    path = f"/v1/users/{user}/recommendations"
    fast = client.get(f"{path}?{query}" if query else path)
    routed = client.get(f"{path}?{query}&explain=false" if query else f"{path}?explain=false")
    return fast, routed


def test_the_fast_path_answers_what_the_route_answers(client: TestClient, route_calls) -> None:
    by_user = post_generated_ratings(client)
    client.put("/v1/items/i3", json={"title": "Item three"})
    for model in ("popular", "rbm"):
        if model == "rbm":
            job = train(client)
            assert job["status"] == "succeeded", job["error"]
        for user in (next(iter(by_user)), "stranger", "caf\u00e9 au lait"):
            for query in ("k=5", "", "k=1", "k=0030", "k=1000"):
                route_calls.clear()
                fast, routed = _both(client, user, query)
                assert route_calls == [f"{query}&explain=false" if query else "explain=false"]
                assert fast.status_code == routed.status_code == 200
                assert fast.json() == routed.json()
                assert fast.headers["content-type"] == routed.headers["content-type"]
                assert fast.headers["content-length"] == routed.headers["content-length"]
                body = fast.json()
                assert body["user_id"] == user
                assert body["strategy"] == (model if user in by_user else "popular")
                if query in ("k=1", "k=5"):
                    assert len(body["items"]) == int(query[2:])
    titled = [i for i in client.get("/v1/users/stranger/recommendations?k=30").json()["items"]
              if i["item_id"] == "i3"]
    assert titled == [{"item_id": "i3", "score": titled[0]["score"], "title": "Item three"}]


@pytest.mark.parametrize("query", ["k=0", "k=1001", "k=ten", "k=", "k=+5", "k=5&k=6", "K=5",
                                   "k=99999999999999999999", "exclude=i1", "where=genre:x",
                                   "explain=true", "k=5&exclude=i1"])
def test_every_other_query_goes_to_the_route(client: TestClient, route_calls, query) -> None:
    post_generated_ratings(client)
    response = client.get(f"/v1/users/u1/recommendations?{query}")
    if query in ("k=0", "k=1001", "k=ten", "k=", "k=99999999999999999999"):
        # FastAPI refuses k before the route's function runs: a 422 the fast path never gives.
        assert route_calls == []
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "k"
    else:
        assert route_calls == [query]
        assert response.status_code == 200


def test_ids_the_rules_refuse_go_to_the_route(client: TestClient) -> None:
    too_long = "u" * 129
    response = client.get(f"/v1/users/{too_long}/recommendations?k=3")
    assert response.status_code == 422  # FastAPI's refusal, before the route's function
    assert response.json()["errors"][0]["field"] == "user_id"
    # Other methods and paths are not its business either: the app's answers.
    assert client.head("/v1/users/u1/recommendations?k=3").status_code == 405
    slash = client.get("/v1/users/u1/recommendations/?k=3", follow_redirects=False)
    assert slash.status_code == 307


def test_the_fast_path_is_measured_under_the_route_template(client: TestClient,
                                                            route_calls) -> None:
    def count() -> float:
        metrics = client.get("/metrics").text
        line = next((row for row in metrics.splitlines() if row.startswith(
            "recommender_request_duration_seconds_count{")
            and 'route="/v1/users/{user_id}/recommendations"' in row
            and 'status="200"' in row), None)
        return float(line.rsplit(" ", 1)[1]) if line else 0.0

    before = count()
    for _ in range(3):
        assert client.get("/v1/users/u1/recommendations?k=2").status_code == 200
    assert route_calls == []
    assert count() == before + 3


@pytest.mark.parametrize("root", ["", "/api"])
def test_api_keys_still_guard_the_fast_path(settings, root: str) -> None:
    """Also under a root path (``--root-path``): the key check used to compare the full path,
    root included, and let every request through."""
    app = create_app(settings.model_copy(update={"api_keys": ["k1"]}))
    with TestClient(app, root_path=root) as client:
        for path in ("/v1/users/u1/recommendations?k=2", "/v1/users/u1/ratings"):
            assert client.get(root + path).status_code == 401
            assert client.get(root + path, headers={"X-API-Key": "k1"}).status_code == 200
        assert client.get(root + "/healthz").status_code == 200


def test_with_opentelemetry_the_route_answers(make_client, route_calls) -> None:
    """FastAPI names a request's span and route from its router: with OpenTelemetry on, the
    fast path stays out of the way."""
    with make_client(opentelemetry=True) as client:
        assert client.get("/v1/users/u1/recommendations?k=2").status_code == 200
    assert route_calls == ["k=2"]


def test_a_database_error_gets_the_routes_problem_answer(client: TestClient, db_url: str,
                                                         route_calls) -> None:
    """The ratings table gone (renamed for the test): the fast path answers with the app's
    handler for that error, the same status and problem body as the route."""
    post_generated_ratings(client)
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE ratings RENAME TO ratings_away"))
        try:
            fast, routed = _both(client, "u1", "k=3")
        finally:
            with engine.begin() as connection:
                connection.execute(sa.text("ALTER TABLE ratings_away RENAME TO ratings"))
    finally:
        engine.dispose()
    assert len(route_calls) == 1  # only the second request went to the route
    expected = 503 if db_url.startswith("sqlite") else 500  # OperationalError / ProgrammingError
    assert fast.status_code == routed.status_code == expected
    assert fast.headers["content-type"] == routed.headers["content-type"]
    assert fast.json() == routed.json()
    assert fast.json()["status"] == expected
