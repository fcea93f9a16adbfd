"""Recommendations (for a user, or for a visitor from the ratings in the body) and
like-probabilities."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ..validation import Id
from .common import ID_TEXT, MAX_BATCH, FiniteRating, RequestModel, ShownTitle, examples


class Because(BaseModel):
    """One of the user's rated items, and how much it raised a recommended item's score."""

    item_id: str
    title: ShownTitle = None
    contribution: float = Field(
        description="Its part of the item's log-odds of being rated, through the engagement "
        "hidden units (the parts of all rated items add up to the change the user's ratings "
        "made; see recommender/rbm/explain.py)."
    )
    share: float = Field(
        description="contribution / the sum of |contribution| over the user's rated items."
    )


class ScoredItem(BaseModel):
    item_id: str
    score: float
    title: ShownTitle = None
    because: list[Because] | None = Field(
        default=None,
        exclude_if=lambda because: because is None,
        description="With ?explain=true: the rated items that contributed most, largest first.",
    )


class Recommendations(BaseModel):
    user_id: str | None
    model_version: str | None
    strategy: Literal["rbm", "popular"]
    items: list[ScoredItem] = Field(
        description="Best first. Every score is a probability in [0, 1]: strategy rbm, how "
        "likely this user is to rate (engage with) the item, from their ratings; strategy "
        "popular, the share of users with ratings who liked it (likes / users), i.e. how "
        "likely a user taken at random is to like it."
    )


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
    item_id: Id = Field(description=ID_TEXT.format(what="item"))
    rating: FiniteRating = Field(description="The visitor's rating, within the rating scale.")


class AnonymousRequest(RequestModel):
    model_config = examples(
        {"ratings": [{"item_id": "i1", "rating": 5}, {"item_id": "i2", "rating": 1}], "k": 5}
    )

    ratings: list[AnonymousRating] = Field(
        default_factory=list,
        max_length=MAX_BATCH,
        description="The visitor's ratings (none: the popular list).",
    )
    k: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="How many items to return; when omitted, RECOMMENDER_DEFAULT_K (10 unless "
        "the deployment sets it).",
    )
    exclude: list[Id] = Field(
        default_factory=list, max_length=1000, description="Item ids never to return."
    )
    where: dict[str, str | int | float | bool] | None = Field(
        default=None,
        description='Only items whose metadata match every field, e.g. {"genres": "Comedy"} '
        "(a list field matches when it contains the value).",
    )
