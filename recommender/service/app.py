"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .errors import install_error_handlers
from .metrics import ServiceMetrics
from .middleware import BodySizeLimitMiddleware, MetricsMiddleware
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
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(
        title="recommender",
        version="0.1.0",
        description="RBM recommendations over HTTP: ratings in, recommendations out, "
        "admin retraining with safe model swaps.",
        lifespan=lifespan,
    )
    app.dependency_overrides[get_settings] = lambda: settings
    install_error_handlers(app)
    for router in (
        ratings.router,
        users.router,
        recommendations.router,
        items.router,
        admin.router,
        health.router,
    ):
        app.include_router(router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees 413s too
    return app
