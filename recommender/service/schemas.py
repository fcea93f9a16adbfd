"""Request and response bodies. Requests reject unknown fields; ids are 1-128 characters;
ratings must be finite (the configured scale is checked by the routes, see ``errors``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag

from recommender.store.models import ID_LENGTH

Id = Annotated[str, StringConstraints(min_length=1, max_length=ID_LENGTH)]
FiniteRating = Annotated[float, Field(allow_inf_nan=False)]
# Unix seconds; the upper bound keeps values exact in JSON doubles.
Timestamp = Annotated[int, Field(ge=0, le=2**53)]
MAX_BATCH = 10_000


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RatingIn(RequestModel):
    user_id: Id
    item_id: Id
    rating: FiniteRating
    timestamp: Timestamp | None = Field(
        default=None, description="Unix seconds; the server's clock when omitted."
    )


class RatingBatch(RequestModel):
    ratings: list[RatingIn] = Field(min_length=1, max_length=MAX_BATCH)


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


class Received(BaseModel):
    received: int


class UserRating(BaseModel):
    item_id: str
    rating: float
    timestamp: int


class UserRatingsPage(BaseModel):
    items: list[UserRating]
    next_cursor: str | None


class UserDeleted(BaseModel):
    user_id: str
    deleted: int


class ScoredItem(BaseModel):
    item_id: str
    score: float
    title: str | None = Field(default=None, exclude_if=lambda title: title is None)


class Recommendations(BaseModel):
    user_id: str | None
    model_version: str | None
    strategy: Literal["rbm", "popular"]
    items: list[ScoredItem]


class Prediction(BaseModel):
    item_id: str
    probability: float | None = Field(
        description="Probability that the user likes the item; null for an item the model "
        "does not know."
    )


class Predictions(BaseModel):
    user_id: str
    model_version: str
    items: list[Prediction]


class AnonymousRating(RequestModel):
    item_id: Id
    rating: FiniteRating


class AnonymousRequest(RequestModel):
    ratings: list[AnonymousRating] = Field(default_factory=list, max_length=MAX_BATCH)
    k: int = Field(default=10, ge=1, le=1000)


class ItemIn(RequestModel):
    title: str | None = Field(default=None, max_length=1000)
    metadata: dict[str, Any] | None = None


class ItemEntry(ItemIn):
    item_id: Id


class ItemBatch(RequestModel):
    items: list[ItemEntry] = Field(min_length=1, max_length=MAX_BATCH)


class ItemOut(BaseModel):
    item_id: str
    title: str | None
    metadata: dict[str, Any] | None


class RetrainRequest(RequestModel):
    config: dict[str, Any] = Field(
        default_factory=dict,
        description='RBMConfig overrides, e.g. {"n_hidden": 64, "epochs": 20}.',
    )
    test_fraction: float | None = Field(default=None, gt=0, lt=1)


class JobAccepted(BaseModel):
    job_id: int
    status: str
    created: bool = Field(description="false: an open job already existed and is returned.")


class Progress(BaseModel):
    epoch: int
    epochs: int


class JobOut(BaseModel):
    job_id: int
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: Progress
    params: dict[str, Any]
    metrics: dict[str, float] | None
    model_version: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ModelOut(BaseModel):
    version: str
    active: bool
    job_id: int | None
    created_at: datetime
    metrics: dict[str, float]
    params: dict[str, Any]
    n_users: int
    n_items: int
    n_ratings: int
    training_seconds: float


class ModelList(BaseModel):
    active_version: str | None
    models: list[ModelOut]


class Activated(BaseModel):
    active_version: str
