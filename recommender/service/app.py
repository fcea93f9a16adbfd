"""The FastAPI application factory."""

from __future__ import annotations

import gc
import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .errors import install_error_handlers
from .metrics import ServiceMetrics
from .middleware import ApiKeyMiddleware, BodySizeLimitMiddleware, MetricsMiddleware
from .routers import admin, health, items, ratings, recommendations, users
from .runtime import Runtime
from .settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. ``settings`` (tests, the CLI) override the environment's."""
    settings = settings or get_settings()
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.torch_threads:
            import torch

            torch.set_num_threads(settings.torch_threads)
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

    app = FastAPI(
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
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.api_keys:
        app.add_middleware(ApiKeyMiddleware, keys=settings.api_keys)
        _document_api_key(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees 401s, 413s too
    return app


def _document_api_key(app: FastAPI) -> None:
    """Declare the X-API-Key scheme in the OpenAPI schema, on the operations that
    :class:`ApiKeyMiddleware` guards (the middleware is invisible to FastAPI)."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["ApiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            for path, operations in schema["paths"].items():
                if ApiKeyMiddleware.guards(path):
                    for operation in operations.values():
                        operation.setdefault("security", []).append({"ApiKey": []})
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


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
