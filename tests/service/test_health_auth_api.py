"""Health, readiness, metrics, API keys, admin auth, and a database that goes away."""

from __future__ import annotations

import sqlite3

from fastapi.testclient import TestClient
from service_helpers import ADMIN
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from recommender.store import testing


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready" and ready.json()["model_version"] is None


def test_metrics_export_latency_and_ratings_count(client: TestClient) -> None:
    client.post("/v1/ratings", json={"user_id": "u", "item_id": "a", "rating": 4})
    client.get("/v1/users/u/recommendations")
    text_body = client.get("/metrics").text
    assert "recommender_ratings 1.0" in text_body
    assert "recommender_ratings_received_total 1.0" in text_body
    assert (
        'recommender_request_duration_seconds_count{method="GET",'
        'route="/v1/users/{user_id}/recommendations",status="200"} 1.0'
    ) in text_body
    assert 'recommender_recommendations_total{strategy="popular"} 1.0' in text_body


def test_request_metrics_keep_label_values_bounded(client: TestClient) -> None:
    for method in ("BREW", "PROPFIND", "BREW"):
        client.request(method, "/healthz")
    client.get("/healthz")
    client.get("/healthz")
    text_body = client.get("/metrics").text
    assert (
        'recommender_request_duration_seconds_count{method="OTHER",route="/healthz",status="405"}'
        " 3.0"
    ) in text_body
    assert (
        'recommender_request_duration_seconds_count{method="GET",route="/healthz",status="200"}'
        " 2.0"
    ) in text_body
    assert "BREW" not in text_body and "PROPFIND" not in text_body


def test_openapi_docs_are_served(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/ratings" in paths and "/v1/admin/retrain" in paths
    assert client.get("/docs").status_code == 200


def test_admin_routes_are_403_without_a_configured_token(make_client) -> None:
    with make_client(admin_token=None) as client:
        response = client.get("/v1/admin/models", headers=ADMIN)
        assert response.status_code == 403
        assert "RECOMMENDER_ADMIN_TOKEN" in response.json()["detail"]


def test_admin_routes_are_401_with_a_missing_or_wrong_token(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        response = client.post("/v1/admin/retrain", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/admin/models", headers=ADMIN).status_code == 200


def test_api_keys_guard_the_v1_routes_when_set(make_client) -> None:
    with make_client(api_keys=["k1", "k2"]) as client:
        row = {"user_id": "u", "item_id": "a", "rating": 4}
        assert client.post("/v1/ratings", json=row).status_code == 401
        assert client.post("/v1/ratings", json=row, headers={"X-API-Key": "bad"}).status_code == 401
        assert client.post("/v1/ratings", json=row, headers={"X-API-Key": "k2"}).status_code == 200
        missing = client.get("/v1/users/u/recommendations")
        assert missing.status_code == 401
        assert "X-API-Key" in missing.json()["detail"]
        assert client.get("/healthz").status_code == 200  # health stays open
        # Admin routes take the admin bearer token, not an API key.
        assert client.get("/v1/admin/models", headers=ADMIN).status_code == 200
        # The scheme is documented on the guarded operations only.
        schema = client.get("/openapi.json").json()
        scheme = schema["components"]["securitySchemes"]["ApiKey"]
        assert scheme == scheme | {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        assert schema["paths"]["/v1/ratings"]["post"]["security"] == [{"ApiKey": []}]
        # Admin routes have their own scheme (the bearer token), not the API key.
        admin = schema["paths"]["/v1/admin/models"]["get"]["security"]
        assert admin == [{"AdminBearer": []}]
        assert "security" not in schema["paths"]["/healthz"]["get"]


def test_without_api_keys_the_v1_routes_are_open(client: TestClient) -> None:
    assert client.get("/v1/users/u/recommendations").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "ApiKey" not in schema.get("components", {}).get("securitySchemes", {})


def test_database_down_answers_503_and_writes_nothing(make_client, db_url: str) -> None:
    with make_client(db_timeout_s=1.0) as client:
        row = {"user_id": "u", "item_id": "a", "rating": 4}
        assert client.post("/v1/ratings", json=row).status_code == 200
        batch = {"ratings": [{"user_id": "u", "item_id": f"b{n}", "rating": 3} for n in range(50)]}
        with database_unavailable(db_url):
            response = client.post("/v1/ratings", json=batch)
            assert response.status_code == 503
            assert "database unavailable" in response.json()["detail"]
            if not db_url.startswith("sqlite"):  # SQLite readers still read during a lock
                ready = client.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["reason"].startswith("database unreachable")
                assert client.get("/v1/users/u/recommendations").status_code == 503
        assert client.get("/readyz").status_code == 200
        assert [r["item_id"] for r in client.get("/v1/users/u/ratings").json()["items"]] == ["a"]
        assert client.post("/v1/ratings", json=batch).status_code == 200


class database_unavailable:  # noqa: N801 - used as a context manager
    """SQLite: another process holds the write lock past the busy timeout.
    PostgreSQL: the database refuses connections and existing ones are terminated."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock: sqlite3.Connection | None = None

    def __enter__(self) -> None:
        parsed = make_url(self.url)
        if parsed.get_backend_name() == "sqlite":
            self._lock = sqlite3.connect(parsed.database, isolation_level=None)
            self._lock.execute("BEGIN EXCLUSIVE")
            return
        self._admin(
            f'ALTER DATABASE "{parsed.database}" ALLOW_CONNECTIONS false',
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{parsed.database}' AND pid <> pg_backend_pid()",
        )

    def __exit__(self, *_exc) -> None:
        if self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            return
        self._admin(f'ALTER DATABASE "{make_url(self.url).database}" ALLOW_CONNECTIONS true')

    @staticmethod
    def _admin(*statements: str) -> None:
        engine = create_engine(testing.postgres_server_url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                for statement in statements:
                    connection.execute(text(statement))
        finally:
            engine.dispose()
