"""What every request and response body shares: the request base class (unknown fields are
refused), ratings, timestamps, the batch bound, id descriptions, examples and titles."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

FiniteRating = Annotated[float, Field(allow_inf_nan=False)]
# Unix seconds; the upper bound keeps values exact in JSON doubles.
Timestamp = Annotated[int, Field(ge=0, le=2**53)]
MAX_BATCH = 10_000
ID_TEXT = "The {what}'s id: 1-128 characters, no '/', no NUL, no lone UTF-16 surrogate."
# An item id being written (validation.ItemIdIn).
ITEM_ID_IN_TEXT = (
    "The item's id: 1-128 characters, no '/', no NUL, no lone UTF-16 surrogate; not 'new' "
    "nor 'popular' (the paths of the lists)."
)
# A title shown next to an item id in a list; left out of the body when the item has none.
ShownTitle = Annotated[str | None, Field(exclude_if=lambda title: title is None)]


def examples(*bodies: dict[str, Any]) -> ConfigDict:
    """The ``model_config`` that documents ``bodies`` as the schema's examples."""
    return ConfigDict(json_schema_extra={"examples": list(bodies)})


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Received(BaseModel):
    received: int
