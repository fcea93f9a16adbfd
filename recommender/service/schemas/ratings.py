"""POST /v1/ratings: one rating or a batch."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag

from ..validation import Id, ItemIdIn
from .common import (
    ID_TEXT,
    ITEM_ID_IN_TEXT,
    MAX_BATCH,
    FiniteRating,
    RequestModel,
    Timestamp,
    examples,
)


class RatingIn(RequestModel):
    model_config = examples(
        {"user_id": "u1", "item_id": "i1", "rating": 4, "timestamp": 1700000000}
    )

    user_id: Id = Field(description=ID_TEXT.format(what="user"))
    item_id: ItemIdIn = Field(description=ITEM_ID_IN_TEXT)
    rating: FiniteRating = Field(
        description="The rating, within RECOMMENDER_RATING_MIN..RECOMMENDER_RATING_MAX "
        "(1..5 by default)."
    )
    timestamp: Timestamp | None = Field(
        default=None, description="Unix seconds; the server's clock when omitted."
    )


class RatingBatch(RequestModel):
    model_config = examples(
        {
            "ratings": [
                {"user_id": "u1", "item_id": "i1", "rating": 4},
                {"user_id": "u1", "item_id": "i2", "rating": 2},
            ]
        }
    )

    ratings: list[RatingIn] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="Up to RECOMMENDER_MAX_BATCH ratings, written all or nothing.",
    )


def _ratings_body_kind(value: Any) -> str:
    if isinstance(value, dict) and "ratings" in value:
        return "batch"
    if isinstance(value, RatingBatch):
        return "batch"
    return "single"


# POST /v1/ratings takes one rating or {"ratings": [...]}; the discriminator picks the shape
# up front, so errors speak about the shape the client meant.
RatingsBody = Annotated[
    Annotated[RatingIn, Tag("single")] | Annotated[RatingBatch, Tag("batch")],
    Discriminator(_ratings_body_kind),
]
BODY_TAGS = frozenset({"single", "batch"})
