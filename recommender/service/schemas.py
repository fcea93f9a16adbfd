"""Request and response bodies. Requests reject unknown fields; ids are :data:`Id` (1-128
characters, no NUL, no lone surrogate, no "/", see ``validation``); ratings must be finite (the
configured scale is checked by the routes). Every request body documents its fields and carries
an example; every error is a :class:`Problem`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from recommender.rbm.config import RBMConfig

from .validation import Id, JsonObject, Title

FiniteRating = Annotated[float, Field(allow_inf_nan=False)]
# Unix seconds; the upper bound keeps values exact in JSON doubles.
Timestamp = Annotated[int, Field(ge=0, le=2**53)]
MAX_BATCH = 10_000
ID_TEXT = "The {what}'s id: 1-128 characters, no '/', no NUL, no lone UTF-16 surrogate."


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RatingIn(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"user_id": "u1", "item_id": "i1", "rating": 4, "timestamp": 1700000000}]
        }
    )

    user_id: Id = Field(description=ID_TEXT.format(what="user"))
    item_id: Id = Field(description=ID_TEXT.format(what="item"))
    rating: FiniteRating = Field(
        description="The rating, within RECOMMENDER_RATING_MIN..RECOMMENDER_RATING_MAX "
        "(1..5 by default)."
    )
    timestamp: Timestamp | None = Field(
        default=None, description="Unix seconds; the server's clock when omitted."
    )


class RatingBatch(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "ratings": [
                        {"user_id": "u1", "item_id": "i1", "rating": 4},
                        {"user_id": "u1", "item_id": "i2", "rating": 2},
                    ]
                }
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


class FieldProblem(BaseModel):
    """One bad input field (inside a 422 problem's ``errors``)."""

    field: str = Field(description='Where: "rating", "ratings[3].item_id", "metadata.year".')
    value: Any = Field(description="The value received there (shortened when long).")
    message: str = Field(description="What was wrong, naming the field and the value.")
    type: str = Field(description='A machine-readable kind, e.g. "missing", "out_of_scale".')


class Problem(BaseModel):
    """RFC 9457 problem details: the body of every error response."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
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
            ]
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


class Because(BaseModel):
    """One of the user's rated items, and how much it raised a recommended item's score."""

    item_id: str
    title: str | None = Field(default=None, exclude_if=lambda title: title is None)
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
    title: str | None = Field(default=None, exclude_if=lambda title: title is None)
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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "ratings": [{"item_id": "i1", "rating": 5}, {"item_id": "i2", "rating": 1}],
                    "k": 5,
                }
            ]
        }
    )

    ratings: list[AnonymousRating] = Field(
        default_factory=list,
        max_length=MAX_BATCH,
        description="The visitor's ratings (none: the popular list).",
    )
    k: int = Field(
        default=10, ge=1, le=1000,
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


class ItemIn(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"title": "Toy Story (1995)", "metadata": {"genres": ["Animation"]}}]
        }
    )

    title: Title | None = Field(
        default=None, description="Display title, up to 1000 characters (no NUL)."
    )
    metadata: JsonObject | None = Field(
        default=None,
        description="Free-form JSON object: finite numbers only (no NaN/Infinity), strings "
        "without NUL characters, nested at most 32 levels.",
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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"item_id": "i1", "title": "Toy Story (1995)", "metadata": {"year": 1995}}
            ]
        }
    )

    item_id: Id = Field(description=ID_TEXT.format(what="item"))


class ItemBatch(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"item_id": "i1", "title": "Toy Story (1995)"},
                        {"item_id": "i2", "title": "GoldenEye (1995)", "metadata": {"year": 1995}},
                    ]
                }
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


# A held-out share below this keeps no rating of most users (each holds out
# round(n * test_fraction)), and the evaluation would measure nothing.
MIN_TEST_FRACTION = 0.01


class RetrainRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"config": {"epochs": 20}, "test_fraction": 0.2},
                {"warm_start": True, "warm_start_epochs": 5},
            ]
        }
    )

    # The schema (every hyper-parameter with its bounds and default) is RBMConfig's own; the
    # values stay a plain dict of overrides here (what the job row stores) and are validated
    # by RBMConfig itself when the job is queued (service.training.rbm_config), together with
    # the service's rating scale, so a bad one is a 422 naming config.<field>.
    config: Annotated[
        dict[str, Any],
        WithJsonSchema({**RBMConfig.model_json_schema(), "title": "RBMConfig overrides"}),
    ] = Field(
        default_factory=dict,
        description='RBMConfig overrides, e.g. {"n_hidden": 64, "epochs": 20}. Numbers must '
        "be finite, also inside `extra`. The rating scale and like threshold default to the "
        "service's settings.",
    )
    test_fraction: float | None = Field(
        default=None,
        ge=0,
        lt=1,
        allow_inf_nan=False,
        description="Share of each user's ratings held out to measure the job's metrics (an "
        "evaluation fit on the rest), before the served model is fitted on every rating. "
        f"0: no evaluation (one fit, no metrics); otherwise in [{MIN_TEST_FRACTION}, 1). "
        "Default: RECOMMENDER_TEST_FRACTION, or 0 with warm_start.",
    )
    warm_start: bool = Field(
        default=False,
        description="Start from the active model's parameters (new items start fresh) and "
        "train warm_start_epochs epochs with its hyper-parameters (config overrides apply).",
    )
    warm_start_epochs: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Epochs of a warm start (default 5). Only with warm_start.",
    )

    @field_validator("test_fraction")
    @classmethod
    def _measurable(cls, value: float | None) -> float | None:
        if value is not None and 0 < value < MIN_TEST_FRACTION:
            raise ValueError(
                f"test_fraction must be 0 (no evaluation) or at least {MIN_TEST_FRACTION}"
            )
        return value

    @model_validator(mode="after")
    def _epochs_need_warm_start(self) -> RetrainRequest:
        if self.warm_start_epochs is not None and not self.warm_start:
            raise ValueError(
                "warm_start_epochs is only used with warm_start=true (a cold retrain takes "
                "config.epochs)"
            )
        return self


class PublishRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"version": "offline-2026-12-01", "activate": True}]}
    )

    version: str = Field(
        min_length=1,
        max_length=64,
        description="The artifact's folder in RECOMMENDER_MODEL_DIR (weights.safetensors + "
        "metadata.json, as `recommender train` writes them), which becomes the version name: "
        "letters, digits, '.', '_', '-'.",
    )
    activate: bool = Field(default=False, description="Serve it at once.")


class JobAccepted(BaseModel):
    job_id: int
    status: str
    created: bool = Field(description="false: an open job already existed and is returned.")


class Progress(BaseModel):
    epoch: int = Field(description="Epochs done, over every phase of the job.")
    epochs: int = Field(description="Epochs of all phases (0 until the job starts).")
    phase: Literal["evaluation", "final"] | None = Field(
        default=None,
        description="While running: 'evaluation' (fit on the training split, then scored on "
        "the held-out ratings) or 'final' (fit on every rating: the model served).",
    )


class JobOut(BaseModel):
    job_id: int
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: Progress
    params: dict[str, Any] = Field(
        description="The request (config, test_fraction, warm_start...) and, once running, the "
        "phases the worker resolved: [[name, epochs], ...]."
    )
    metrics: dict[str, float] | None = Field(
        description="Held-out metrics of the evaluation fit (set when it ends, before the final "
        "fit on every rating); {} when the job did not evaluate (test_fraction 0)."
    )
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


# -- the catalogue: similar, popular, new, retired items, explanations ------------------------


class ListedItem(BaseModel):
    """An item of a catalogue list (similar, popular, new); what ``score`` means is said by
    the list's ``strategy``."""

    item_id: str
    score: float
    title: str | None = Field(default=None, exclude_if=lambda title: title is None)


class ItemsPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"item_id": "1", "title": "Toy Story (1995)", "metadata": None},
                        {"item_id": "2", "title": None, "metadata": None, "active": False},
                    ],
                    "next_cursor": "Mg",
                }
            ]
        }
    )

    items: list[ItemOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: last.")


class ItemRetired(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"item_id": "2", "active": False, "ratings_deleted": 0}]}
    )

    item_id: str
    active: bool = Field(description="false: the item is retired.")
    ratings_deleted: int = Field(description="Ratings erased with it (?erase_ratings=true).")


class SimilarItems(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "item_id": "1",
                    "model_version": "20261202T120000Z-j1",
                    "strategy": "rbm",
                    "items": [{"item_id": "95", "score": 0.83, "title": "Aladdin (1992)"}],
                }
            ]
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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "strategy": "popular",
                    "items": [{"item_id": "50", "score": 0.53, "title": "Star Wars (1977)"}],
                }
            ]
        }
    )

    strategy: Literal["popular", "new"] = Field(
        description="popular: score is the popular list's score; new: score is the unix "
        "time the item appeared (its created field, else its first rating)."
    )
    items: list[ListedItem]


class RatingDeleted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"user_id": "u1", "item_id": "1", "deleted": True}]}
    )

    user_id: str
    item_id: str
    deleted: bool


class LoadingItem(BaseModel):
    item_id: str
    title: str | None = Field(default=None, exclude_if=lambda title: title is None)
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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
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
            ]
        }
    )

    user_id: str
    model_version: str
    ratings: int = Field(description="How many of the user's ratings the model knows.")
    units: list[HiddenUnit] = Field(description="Most active first (largest lift over baseline).")
