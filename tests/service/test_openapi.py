"""The OpenAPI document tells the truth (issue 10, "The OpenAPI document and /docs"): one
problem-details error body documented for every status a route can answer, the auth schemes
that give /docs its Authorize button, described and exemplified request bodies,
timezone-aware dates on both databases, and /docs and /redoc served without a CDN."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import jsonschema
import pytest
from service_helpers import ADMIN, post_generated_ratings, train

from recommender.service.schemas import Problem

PROBLEM = "application/problem+json"


def operations(doc: dict):
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def resolve(doc: dict, schema: dict) -> dict:
    """A component schema with its references resolved (for jsonschema)."""
    return {**schema, "components": doc["components"]}


def test_every_error_status_is_a_documented_problem(client):
    doc = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path, method, operation in operations(doc):
        responses = operation["responses"]
        if path == "/readyz":
            assert set(responses) == {"200", "503"}
            continue
        errors = {code for code in responses if code[0] in "45"} | {"default"}
        for code in errors:
            content = responses[code]["content"]
            assert content == {PROBLEM: {"schema": problem_ref}}, (method, path, code)
        has_input = "parameters" in operation or "requestBody" in operation
        assert ("422" in responses) == has_input, (method, path)
        if path.startswith("/v1/"):
            assert "503" in responses, (method, path)
        if "requestBody" in operation:
            assert "413" in responses, (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
    conflicts = [
        ("get", "/v1/users/{user_id}/predictions"),
        ("post", "/v1/admin/retrain"),
        ("post", "/v1/admin/models"),
        ("post", "/v1/admin/models/{version}/activate"),
    ]
    for method, path in conflicts:
        assert "409" in doc["paths"][path][method]["responses"], (method, path)


def test_answers_match_the_documented_problem_schema(client):
    doc = client.get("/openapi.json").json()
    schema = resolve(doc, {"$ref": "#/components/schemas/Problem"})
    answers = [
        client.post("/v1/ratings", json={"user_id": "u", "item_id": "i", "rating": 9}),
        client.post("/v1/ratings", json={"ratings": []}),
        client.get("/v1/items/nope"),
        client.get("/v1/admin/models"),
        client.get("/v1/users/u1/predictions", params={"item_ids": "a"}),  # 409: no model
    ]
    assert [a.status_code for a in answers] == [422, 422, 404, 401, 409]
    for answer in answers:
        assert answer.headers["content-type"] == PROBLEM
        jsonschema.validate(answer.json(), schema)
        Problem.model_validate(answer.json())


def test_auth_schemes_give_docs_an_authorize_button(make_client):
    with make_client(api_keys=["k1"]) as client:
        doc = client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["AdminBearer"]["type"] == "http" and schemes["AdminBearer"]["scheme"] == "bearer"
    api_key = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["ApiKey"] == schemes["ApiKey"] | api_key
    for path, method, operation in operations(doc):
        parameters = operation.get("parameters", [])
        headers = [p["name"].lower() for p in parameters if p["in"] == "header"]
        assert "authorization" not in headers, (method, path)
        if path.startswith("/v1/admin/"):
            assert operation["security"] == [{"AdminBearer": []}]
            assert {"401", "403"} <= set(operation["responses"])
        elif path.startswith("/v1/"):
            assert operation["security"] == [{"ApiKey": []}]
            assert "401" in operation["responses"]
        else:
            assert "security" not in operation


def test_without_api_keys_no_api_key_scheme_is_claimed(client):
    doc = client.get("/openapi.json").json()
    assert "ApiKey" not in doc["components"]["securitySchemes"]
    assert doc["paths"]["/v1/ratings"]["post"].get("security") is None


def _schema_of(doc: dict, schema: dict) -> list[dict]:
    """The object schemas behind a request body schema (through $ref and oneOf)."""
    if "$ref" in schema:
        return [doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]]
    found = []
    for option in schema.get("oneOf", []) + schema.get("anyOf", []):
        if option != {"type": "null"}:  # an optional body
            found += _schema_of(doc, option)
    return found or [schema]


def test_every_request_body_has_descriptions_and_a_valid_example(client):
    doc = client.get("/openapi.json").json()
    bodies = 0
    for path, method, operation in operations(doc):
        if "requestBody" not in operation:
            continue
        bodies += 1
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        for model in _schema_of(doc, schema):
            assert model.get("examples"), (method, path, model.get("title"))
            for example in model["examples"]:
                jsonschema.validate(example, resolve(doc, model))
            for name, field in model["properties"].items():
                assert field.get("description"), (method, path, model.get("title"), name)
    assert bodies >= 5


def test_examples_are_accepted_by_the_service(client):
    """The documented examples are real requests: each one is accepted."""
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for example in schemas["RatingIn"]["examples"] + schemas["RatingBatch"]["examples"]:
        assert client.post("/v1/ratings", json=example).status_code == 200
    (item,) = schemas["ItemIn"]["examples"]
    assert client.put("/v1/items/i1", json=item).status_code == 200
    (batch,) = schemas["ItemBatch"]["examples"]
    assert client.post("/v1/items", json=batch).status_code == 200
    (visitor,) = schemas["AnonymousRequest"]["examples"]
    assert client.post("/v1/recommendations", json=visitor).status_code == 200


ISO_AWARE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def test_dates_are_timezone_aware_on_both_databases(client):
    """SQLite gave naive times ("2026-01-01T10:00:00"), PostgreSQL aware ones."""
    post_generated_ratings(client)
    job = train(client)
    assert job["status"] == "succeeded", job
    models = client.get("/v1/admin/models", headers=ADMIN).json()["models"]
    stamps = [job["created_at"], job["started_at"], job["finished_at"], models[0]["created_at"]]
    for stamp in stamps:
        assert ISO_AWARE.match(stamp), stamp
        moment = datetime.fromisoformat(stamp)
        assert moment.utcoffset() is not None
        assert abs((datetime.now(UTC) - moment).total_seconds()) < 3600  # UTC, not local
    doc = client.get("/openapi.json").json()
    assert doc["components"]["schemas"]["JobOut"]["properties"]["created_at"]["format"] == (
        "date-time"
    )


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_need_no_cdn(client, page):
    html = client.get(page)
    assert html.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert assets, html.text
    for asset in assets:
        assert not asset.startswith(("http://", "https://", "//")), asset
        if asset.endswith((".js", ".css")):
            served = client.get(asset)
            assert served.status_code == 200 and len(served.content) > 10_000, asset
    assert "cdn.jsdelivr.net" not in html.text and "unpkg.com" not in html.text
