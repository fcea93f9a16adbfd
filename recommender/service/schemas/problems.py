"""The body of every error response (RFC 9457 problem details) and of readiness."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .common import examples


class FieldProblem(BaseModel):
    """One bad input field (inside a 422 problem's ``errors``)."""

    field: str = Field(description='Where: "rating", "ratings[3].item_id", "metadata.year".')
    value: Any = Field(description="The value received there (shortened when long).")
    message: str = Field(description="What was wrong, naming the field and the value.")
    type: str = Field(description='A machine-readable kind, e.g. "missing", "out_of_scale".')


class Problem(BaseModel):
    """RFC 9457 problem details: the body of every error response."""

    model_config = examples(
        {
            "type": "about:blank",
            "title": "Unprocessable Content",
            "status": 422,
            "detail": "rating: rating must be in [1, 5] (RECOMMENDER_RATING_MIN/MAX). "
            "Received: rating=7",
            "instance": "/v1/ratings",
            "errors": [
                {
                    "field": "rating",
                    "value": 7,
                    "message": "rating: rating must be in [1, 5] "
                    "(RECOMMENDER_RATING_MIN/MAX). Received: rating=7",
                    "type": "out_of_scale",
                }
            ],
        }
    )

    type: str = Field(default="about:blank", description="about:blank: see status and title.")
    title: str = Field(description="The HTTP status phrase.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong this time, for a person.")
    instance: str | None = Field(default=None, description="The request's path.")
    errors: list[FieldProblem] | None = Field(
        default=None, description="Input errors, one per bad field (422 only)."
    )


class Readiness(BaseModel):
    """GET /readyz: 200 when the database answers, 503 (this body too) when it does not."""

    status: Literal["ready", "unavailable"]
    database: str | None = Field(default=None, description='"ok" when ready.')
    model_version: str | None = Field(default=None, description="The model being served.")
    model_error: str | None = Field(default=None, description="Why the last load failed.")
    reason: str | None = Field(default=None, description="Why not ready (503 only).")
