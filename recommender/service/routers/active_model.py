"""The model a route needs: the one being served, or 409 before any has been trained."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status

from ..runtime import Runtime
from ..serving import LoadedModel

# The routes that call served_model() declare this answer in their OpenAPI responses.
NO_MODEL_YET: dict[int | str, dict[str, Any]] = {
    409: {"description": "No model has been trained yet."}
}


def served_model(runtime: Runtime) -> LoadedModel:
    """The active model; 409 (``NO_MODEL_YET``) before any model has been trained."""
    loaded = runtime.models.current
    if loaded is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "no model has been trained yet: POST /v1/admin/retrain first",
        )
    return loaded
