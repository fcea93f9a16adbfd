"""A user's ratings, erasing them, and the user's profile (their most active hidden units)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .common import ShownTitle, examples


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


class RatingDeleted(BaseModel):
    model_config = examples({"user_id": "u1", "item_id": "1", "deleted": True})

    user_id: str
    item_id: str
    deleted: bool


class LoadingItem(BaseModel):
    item_id: str
    title: ShownTitle = None
    weight: float = Field(description="The item's engagement weight on the unit.")


class GenreShare(BaseModel):
    genre: str
    items: int = Field(description="How many of the unit's listed items have it.")


class HiddenUnit(BaseModel):
    unit: int = Field(description="Engagement hidden unit index.")
    activation: float = Field(description="p(unit on | the user's ratings).")
    baseline: float = Field(description="p(unit on) for a user with no ratings.")
    items: list[LoadingItem] = Field(description="The items that load most on the unit.")
    genres: list[GenreShare] = Field(
        description="Genres (metadata.genres) shared by two or more of those items."
    )


class UserProfile(BaseModel):
    model_config = examples(
        {
            "user_id": "u1",
            "model_version": "20261202T120000Z-j1",
            "ratings": 42,
            "units": [
                {
                    "unit": 7,
                    "activation": 0.93,
                    "baseline": 0.41,
                    "items": [{"item_id": "1", "title": "Toy Story", "weight": 0.8}],
                    "genres": [{"genre": "Animation", "items": 4}],
                }
            ],
        }
    )

    user_id: str
    model_version: str
    ratings: int = Field(description="How many of the user's ratings the model knows.")
    units: list[HiddenUnit] = Field(description="Most active first (largest lift over baseline).")
