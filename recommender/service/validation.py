"""Input checks shared by every router: the ``Id`` type, text and JSON that every database can
store and give back, and the checks that depend on the configuration.

Valid JSON can still carry values no database stores faithfully:

- a NUL character (``"\\u0000"``): PostgreSQL refuses it in text, SQLite keeps it;
- a lone UTF-16 surrogate (``"\\ud800"``): it has no UTF-8 encoding, so it cannot be written,
  or (inside JSON metadata, where it travels escaped) it is written and can never be read back;
- a non-finite number (``NaN``, ``1e400``): PostgreSQL refuses it in JSON, SQLite stores null.

Each is refused here with 422 naming the field, before anything is written. Ids also may not
contain ``/``: a client sends ``a/b`` in a URL as ``a%2Fb``, which the server decodes back to
``a/b`` before routing, so such an id could be written in a body but never addressed by a
route (read, un-rated or erased). Refusing it at write time keeps every stored id addressable;
for the same reason an item id written may not be ``new`` or ``popular`` (GET /v1/items/new
and /v1/items/popular are the lists).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

# The id rules live below the service (recommender import applies them too); re-exported here
# for the routers.
from recommender.data.ids import (  # noqa: F401
    ID_LENGTH,
    RESERVED_ITEM_IDS,
    id_problem,
    item_id_problem,
    text_problem,
)

if TYPE_CHECKING:  # settings imports the schemas, which import this module
    from .settings import Settings

_MAX_VALUE_CHARS = 200
TITLE_LENGTH = 1000
# Nesting deeper than this in item metadata is refused (Python's JSON reader and the JSON
# writers recurse; a few hundred levels are far beyond any catalogue's needs).
MAX_JSON_DEPTH = 32


class FieldError(ValueError):
    """Bad input found after parsing (e.g. a rating outside the configured scale)."""

    def __init__(self, field: str, value: Any, message: str, kind: str = "value_error") -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.message = message
        self.kind = kind

    def as_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "value": printable(self.value),
            "message": self.message,
            "type": self.kind,
        }


def printable(value: Any) -> Any:
    """The offending value, made JSON-safe and short: NaN -> "nan", a lone surrogate ->
    the text ``\\ud800``, long strings and lists summarized."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return f"<list of {len(value)} items>" if len(value) > 10 else [printable(v) for v in value]
    if isinstance(value, dict):
        if len(value) > 10:
            return f"<object with {len(value)} fields>"
        return {printable(str(k)): printable(v) for k, v in value.items()}
    if isinstance(value, str):
        if len(value) > _MAX_VALUE_CHARS:
            value = value[:_MAX_VALUE_CHARS] + f"... ({len(value)} characters)"
        # A lone surrogate cannot be encoded as UTF-8: show it escaped.
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bytes):
        return printable(value.decode("utf-8", errors="replace"))
    if value is None or isinstance(value, bool | int | float):
        return value
    return printable(repr(value))


def _check_text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError("unstorable_text", problem)
    return value


def _check_id(value: str) -> str:
    _check_text(value)
    if "/" in value:
        raise PydanticCustomError(
            "slash_in_id",
            "ids must not contain '/': such an id could not be addressed in a URL "
            "(a%2Fb reaches the server as a/b)",
        )
    return value


def _check_item_id(value: str) -> str:
    if value in RESERVED_ITEM_IDS:
        raise PydanticCustomError("reserved_item_id", str(item_id_problem(value)))
    return value


def json_problem(value: Any, path: str = "", depth: int = 0) -> tuple[str, Any, str] | None:
    """The first ``(path, value, reason)`` in a JSON value that cannot be stored: a NUL or
    lone surrogate in a key or string, a non-finite number, nesting over
    :data:`MAX_JSON_DEPTH`; ``None`` when it can all be stored and read back."""
    if depth > MAX_JSON_DEPTH:
        return path, "<nested deeper>", f"must not be nested deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, float):
        if not math.isfinite(value):
            return path, value, "must be a finite number (JSON has no NaN or Infinity)"
        return None
    if isinstance(value, str):
        problem = text_problem(value)
        return (path, value, problem) if problem else None
    if isinstance(value, dict):
        for key, item in value.items():
            key_problem = text_problem(key)
            if key_problem:
                return f"{path}.{key}" if path else key, key, f"key {key_problem}"
            found = json_problem(item, f"{path}.{key}" if path else key, depth + 1)
            if found:
                return found
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = json_problem(item, f"{path}[{index}]", depth + 1)
            if found:
                return found
    return None


def _check_json_object(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    found = json_problem(value)
    if found is not None:
        where, bad, reason = found
        # The error handler reads "subfield"/"subvalue" to name the exact place in the
        # object (``metadata.ratings[2]``) and the value found there.
        raise PydanticCustomError(
            "unstorable_json",
            "{reason}",
            # Escaped: pydantic cannot carry a lone surrogate in an error's context.
            {"reason": reason, "subfield": printable(where), "subvalue": printable(bad)},
        )
    return value


# A user or item id: 1-128 characters, no NUL, no lone surrogate, no "/". The one type every
# router uses, in bodies, paths and queries.
Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=ID_LENGTH),
    AfterValidator(_check_id),
    # Documented only: the check is _check_id (a JSON Schema pattern cannot name surrogates).
    Field(json_schema_extra={"pattern": "^[^/\\u0000]+$"}),
]
# The id of an item being written (a rating's item; PUT and POST /v1/items): an Id that is not
# "new" nor "popular", the paths of the lists (GET /v1/items/new could not read such an item).
# Routes that only address an item take any Id, so an item stored before the rule stays
# reachable where it can be.
ItemIdIn = Annotated[
    Id,
    AfterValidator(_check_item_id),
    Field(json_schema_extra={"not": {"enum": sorted(RESERVED_ITEM_IDS)}}),
]
# Free text that is stored (titles): no NUL, no lone surrogate.
Title = Annotated[str, StringConstraints(max_length=TITLE_LENGTH), AfterValidator(_check_text)]
# Free-form JSON that is stored (item metadata): strings as in Title, finite numbers only.
JsonObject = Annotated[dict[str, Any], AfterValidator(_check_json_object)]


def check_rating_scale(ratings: Iterable[tuple[str, float]], settings: Settings) -> None:
    """Raise :class:`FieldError` for the first ``(field, rating)`` outside the scale."""
    low, high = settings.rating_min, settings.rating_max
    for field, value in ratings:
        if not low <= value <= high:
            raise FieldError(
                field,
                value,
                f"{field}: rating must be in [{low:g}, {high:g}] "
                f"(RECOMMENDER_RATING_MIN/MAX). Received: rating={value:g}",
                kind="out_of_scale",
            )


# Ids in URL paths: the same Id type, documented as a path parameter.
UserIdPath = Annotated[Id, Path(description="The user's id (see Id: no '/', 1-128 characters).")]
ItemIdPath = Annotated[Id, Path(description="The item's id (see Id: no '/', 1-128 characters).")]
ItemIdInPath = Annotated[
    ItemIdIn,
    Path(
        description="The item's id (see Id: no '/', 1-128 characters; not 'new' nor 'popular', "
        "the paths of the lists)."
    ),
]
# Admin paths: a job id fits the INTEGER column on every database (a larger one gave 500 on
# both); a model version is stored text (no NUL: PostgreSQL refused it with a 500).
JobIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="The job's id.")]
VersionPath = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_check_text),
    Path(description="A model version, as GET /v1/admin/models lists them."),
]
