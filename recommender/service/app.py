"""The FastAPI application factory."""

from __future__ import annotations

import gc
import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from recommender.core import backend

from .errors import PROBLEM_MEDIA_TYPE, install_error_handlers
from .metrics import ServiceMetrics
from .middleware import ApiKeyMiddleware, BodySizeLimitMiddleware, MetricsMiddleware
from .routers import admin, health, items, ratings, recommendations, users
from .runtime import Runtime
from .schemas import Problem, Readiness
from .settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. ``settings`` (tests, the CLI) override the environment's."""
    settings = settings or get_settings()
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.torch_threads:  # torch's and numpy's BLAS threads alike
            backend.configure_threads(settings.torch_threads)
            backend.limit_blas_threads(settings.torch_threads)
        if settings.scoring_threads:
            backend.set_scoring_threads(settings.scoring_threads)
        backend.keep_freed_memory()  # scoring's per-batch buffers: no page faults each time
        runtime = Runtime.build(settings, metrics)
        app.state.runtime = runtime
        runtime.start()
        gc_state = _freeze_gc() if settings.gc_freeze else None
        try:
            yield
        finally:
            if gc_state is not None:
                gc.unfreeze()
                gc.set_threshold(*gc_state)
            runtime.stop()

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from the fastapi-offline
    # package's files (served under /static-offline-docs), not from a CDN: they work on an
    # air-gapped deployment.
    app = FastAPIOffline(
        title="recommender",
        version="0.1.0",
        description="RBM recommendations over HTTP: ratings in, recommendations out, "
        "admin retraining with safe model swaps.",
        lifespan=lifespan,
        **_telemetry_options(settings),
    )
    # Routes read these through deps.app_settings. Not a dependency override: FastAPI
    # re-inspects an override's signature on every request (~0.1 ms each).
    app.state.settings = settings
    install_error_handlers(app)
    for router in (
        recommendations.router,  # first: the hot route matches without trying the others
        ratings.router,
        users.router,
        items.router,
        admin.router,
        health.router,
    ):
        app.include_router(router)
    # Innermost: the hot route's plain requests skip the framework's layers, not these. Not
    # with OpenTelemetry on: FastAPI names a request's span and route from its router.
    if not settings.opentelemetry:
        app.add_middleware(recommendations.FastUserRecommendations, api=app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.api_keys:
        app.add_middleware(ApiKeyMiddleware, keys=settings.api_keys)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees 401s, 413s too
    _document_contract(app, settings)
    return app


# What each error status means, for every operation that can answer it.
_ERROR_DESCRIPTIONS = {
    401: "Missing or wrong credentials (X-API-Key, or the admin bearer token).",
    403: "Admin routes are disabled: RECOMMENDER_ADMIN_TOKEN is not set.",
    404: "No such resource (or no route: ids never contain '/').",
    409: "The request conflicts with the current state (e.g. no model trained yet).",
    413: "The body is over RECOMMENDER_MAX_BODY_BYTES.",
    422: "Invalid input: `errors` names each bad field, the value received and why.",
    503: "The database is unavailable; nothing was written. Retry after Retry-After seconds.",
}


def _document_contract(app: FastAPI, settings: Settings) -> None:
    """Make the OpenAPI document say what the service does, where FastAPI cannot see it:

    - every error is a :class:`Problem` (``application/problem+json``), documented on each
      operation for each status it can answer (401, 403, 404, 409, 413, 422, 503) and as the
      ``default`` response; FastAPI's own 422 schema (``loc/msg/type``) is not what is sent;
    - admin routes declare the ``AdminBearer`` HTTP bearer scheme (instead of a plain
      ``authorization`` header parameter), and, when ``RECOMMENDER_API_KEYS`` is set, the
      routes :class:`ApiKeyMiddleware` guards declare the ``ApiKey`` scheme: /docs then has an
      Authorize button;
    - ratings are documented within the configured scale (RECOMMENDER_RATING_MIN/MAX).
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _amend(build(), settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _amend(schema: dict[str, Any], settings: Settings) -> dict[str, Any]:
    api_keys = bool(settings.api_keys)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for rated in ("RatingIn", "AnonymousRating"):
        if rated in schemas:  # the scale is configuration, checked by the routes
            rating = schemas[rated]["properties"]["rating"]
            rating.update(minimum=settings.rating_min, maximum=settings.rating_max)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas["Problem"] = problem_schema
    problem_ref = {"schema": {"$ref": "#/components/schemas/Problem"}}

    schemes = components.setdefault("securitySchemes", {})
    schemes["AdminBearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "Authorization: Bearer <RECOMMENDER_ADMIN_TOKEN> (admin routes).",
    }
    if api_keys:
        schemes["ApiKey"] = {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "One of RECOMMENDER_API_KEYS (every /v1 route but /v1/admin).",
        }

    schemas["Readiness"] = Readiness.model_json_schema()
    readiness = {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}
    for path, operations in schema.get("paths", {}).items():
        if path == "/readyz":  # a probe: its 503 is a readiness body, not a problem
            operations["get"]["responses"] = {
                "200": {"description": "The database answers.", "content": readiness},
                "503": {"description": "The database does not answer.", "content": readiness},
            }
            continue
        for operation in operations.values():
            statuses = _secure(path, operation, api_keys=api_keys)
            statuses |= _error_statuses(path, operation)
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                entry = responses.setdefault(str(status), {})
                if entry.get("description") in (None, "Validation Error", "Additional Response"):
                    entry["description"] = _ERROR_DESCRIPTIONS.get(status, "Error")
                entry["content"] = {PROBLEM_MEDIA_TYPE: problem_ref}
            responses["default"] = {
                "description": "Any other error, as problem details.",
                "content": {PROBLEM_MEDIA_TYPE: problem_ref},
            }
    return schema


def _secure(path: str, operation: dict[str, Any], *, api_keys: bool) -> set[int]:
    """Declare the operation's security scheme; returns the statuses it adds (401, 403)."""
    if path.startswith("/v1/admin/"):
        # The bearer scheme replaces the header parameter deps.require_admin reads.
        parameters = [
            p
            for p in operation.get("parameters", [])
            if not (p.get("in") == "header" and p.get("name", "").lower() == "authorization")
        ]
        if parameters:
            operation["parameters"] = parameters
        else:
            operation.pop("parameters", None)
        operation["security"] = [{"AdminBearer": []}]
        return {401, 403}
    if api_keys and ApiKeyMiddleware.guards(path):
        operation["security"] = [{"ApiKey": []}]
        return {401}
    return set()


def _error_statuses(path: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation can answer besides those its route declares."""
    responses = operation.setdefault("responses", {})
    statuses = {int(code) for code in responses if code[:1] in "45"}
    if operation.get("parameters") or "requestBody" in operation:
        statuses.add(422)
    else:  # FastAPI declared it for the admin header parameter, which is never invalid
        statuses.discard(422)
        responses.pop("422", None)
    if "requestBody" in operation:
        statuses.add(413)
    if any(p.get("in") == "path" for p in operation.get("parameters", [])):
        statuses.add(404)  # a path id nothing has, or (with "/" in it) no route at all
    if path.startswith("/v1/"):
        statuses.add(503)  # every /v1 route can need the database
    return statuses


def _telemetry_options(settings: Settings) -> dict:
    """Switch FastAPI's native OpenTelemetry off unless asked for (FastAPI versions without
    it take no such argument)."""
    if settings.opentelemetry or "telemetry" not in inspect.signature(FastAPI).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


# Allocations between young-generation collections (CPython's default is 700): a request
# allocates hundreds of objects; collecting every few requests is wasted work.
GC_YOUNG_THRESHOLD = 20_000


def _freeze_gc() -> tuple[int, int, int]:
    """Move everything alive after start-up out of the collector's sight, and collect less
    often; returns the previous thresholds. What a long-running server does once it is warm
    (gc.freeze, Python docs); the lifespan undoes it at shutdown."""
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 1000)
    return previous
