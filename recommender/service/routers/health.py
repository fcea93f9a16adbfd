"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from recommender import store

from ..deps import RuntimeDep

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers (no database access: also the benchmark's ceiling route)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Ready when the database answers; 503 with the reason when it does not."""
    try:
        with runtime.sessions() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        # The driver's message names the database host and port: in the log only.
        log.warning("readiness check: database unreachable: %s", exc)
        return JSONResponse(
            status_code=503,
            content={
                "status": "unavailable",
                "reason": "database unreachable (refused, or no answer within "
                "RECOMMENDER_DB_TIMEOUT_S); the server log has the cause",
            },
        )
    current = runtime.models.current
    return JSONResponse(
        {
            "status": "ready",
            "database": "ok",
            "model_version": current.version if current else None,
            "model_error": runtime.models.last_error,
        }
    )


@router.get("/metrics", include_in_schema=False)
def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text format."""
    try:
        with runtime.sessions() as session:
            runtime.metrics.ratings_stored.set(store.count_ratings(session))
    except Exception:  # noqa: BLE001 - still export the rest
        pass
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
