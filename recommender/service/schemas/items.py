"""The catalogue: items written and read, pages of them, retiring one, and the lists (similar,
popular, new)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ..validation import ItemIdIn, JsonObject, Title
from .common import ITEM_ID_IN_TEXT, MAX_BATCH, RequestModel, ShownTitle, Timestamp, examples


class ItemIn(RequestModel):
    model_config = examples({"title": "Toy Story (1995)", "metadata": {"genres": ["Animation"]}})

    title: Title | None = Field(
        default=None,
        description="Display title, up to 1000 characters (no NUL); omitted: none (PUT "
        "replaces; PATCH changes only the fields it carries).",
    )
    metadata: JsonObject | None = Field(
        default=None,
        description="Free-form JSON object: finite numbers only (no NaN/Infinity), strings "
        "without NUL characters, nested at most 32 levels; omitted: none.",
    )
    active: bool | None = Field(
        default=None,
        description="false retires the item (never recommended nor returned as similar, "
        "within the model poll interval); true restores it; omitted: a new item is active, "
        "an existing one keeps its state.",
    )
    created: Timestamp | None = Field(
        default=None,
        description='Unix seconds the item appeared (the "new" list); omitted: its first '
        "rating's time.",
    )


class ItemEntry(ItemIn):
    model_config = examples(
        {"item_id": "i1", "title": "Toy Story (1995)", "metadata": {"year": 1995}}
    )

    item_id: ItemIdIn = Field(description=ITEM_ID_IN_TEXT)


class ItemBatch(RequestModel):
    model_config = examples(
        {
            "items": [
                {"item_id": "i1", "title": "Toy Story (1995)"},
                {"item_id": "i2", "title": "GoldenEye (1995)", "metadata": {"year": 1995}},
            ]
        }
    )

    items: list[ItemEntry] = Field(
        min_length=1, max_length=MAX_BATCH, description="Up to 10,000 items, all or nothing."
    )


class ItemOut(BaseModel):
    item_id: str
    title: str | None
    metadata: dict[str, Any] | None
    active: bool = Field(
        default=True,
        exclude_if=lambda active: active,
        description="Present (false) only for a retired item.",
    )
    created: int | None = Field(
        default=None,
        exclude_if=lambda created: created is None,
        description="Unix seconds, when the item was given one.",
    )


class ItemsPage(BaseModel):
    model_config = examples(
        {
            "items": [
                {"item_id": "1", "title": "Toy Story (1995)", "metadata": None},
                {"item_id": "2", "title": None, "metadata": None, "active": False},
            ],
            "next_cursor": "Mg",
        }
    )

    items: list[ItemOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: last.")


class ItemRetired(BaseModel):
    model_config = examples({"item_id": "2", "active": False, "ratings_deleted": 0})

    item_id: str
    active: bool = Field(description="false: the item is retired.")
    ratings_deleted: int = Field(description="Ratings erased with it (?erase_ratings=true).")


class ListedItem(BaseModel):
    """An item of a catalogue list (similar, popular, new); what ``score`` means is said by
    the list's ``strategy``."""

    item_id: str
    score: float
    title: ShownTitle = None


class SimilarItems(BaseModel):
    model_config = examples(
        {
            "item_id": "1",
            "model_version": "20261202T120000Z-j1",
            "strategy": "rbm",
            "items": [{"item_id": "95", "score": 0.83, "title": "Aladdin (1992)"}],
        }
    )

    item_id: str
    model_version: str | None
    strategy: Literal["rbm", "cooccurrence"] = Field(
        description="rbm: cosine of the items' engagement weights in the active model (score "
        "in [-1, 1]); cooccurrence: no model knows the item yet, score = users who rated both."
    )
    items: list[ListedItem]


class ItemList(BaseModel):
    model_config = examples(
        {
            "strategy": "popular",
            "items": [{"item_id": "50", "score": 0.53, "title": "Star Wars (1977)"}],
        }
    )

    strategy: Literal["popular", "new"] = Field(
        description="popular: score is the popular list's score; new: score is the unix "
        "time the item appeared (its created field, else its first rating)."
    )
    items: list[ListedItem]


class ItemPatch(RequestModel):
    """PATCH /v1/items/{item_id}: only the fields present change (a JSON merge patch, RFC
    7396, of the item)."""

    model_config = examples(
        {"active": False},
        {"title": "Toy Story (1995)", "metadata": {"year": 1995}},
    )

    title: Title | None = Field(
        default=None,
        description="The new display title (up to 1000 characters, no NUL); null removes it; "
        "omitted: kept.",
    )
    metadata: JsonObject | None = Field(
        default=None,
        description="Merged into the item's metadata key by key (RFC 7396): a key set to null "
        "is removed, an object merges recursively, any other value replaces the key's value; "
        "null removes all metadata; omitted: kept. Values as in PUT (finite numbers, no NUL, "
        "nested at most 32 levels).",
    )
    active: bool | None = Field(
        default=None,
        description="false retires the item, true restores it; omitted or null: kept.",
    )
    created: Timestamp | None = Field(
        default=None,
        description='Unix seconds the item appeared (the "new" list); omitted or null: kept.',
    )
