"""What a user or item id may be, wherever it arrives (HTTP, a ratings file, an artifact).

An id is 1-128 characters of text that every database here stores and gives back faithfully
(no NUL, no lone UTF-16 surrogate) and that a URL can address (no ``/``: a client sends ``a/b``
as ``a%2Fb``, which the server decodes back to ``a/b`` before routing). The HTTP layer
(``recommender.service.validation``) and ``recommender import`` share these rules, so every
stored id can be read, un-rated and erased through the API.
"""

from __future__ import annotations

import re

ID_LENGTH = 128  # user and item ids: 1-128 characters

# Code points no database here stores faithfully: NUL and lone (unpaired) surrogates.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored (``None`` when it can)."""
    found = UNSTORABLE.search(value)
    if found is None:
        return None
    char = found.group()
    position = found.start()
    if char == "\x00":
        return f"must not contain a NUL character (found at position {position})"
    return (
        f"must not contain a lone UTF-16 surrogate (found {char.encode('unicode_escape').decode()}"
        f" at position {position}): it has no UTF-8 encoding"
    )


def id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid id (``None`` when it is)."""
    if not 1 <= len(value) <= ID_LENGTH:
        return f"ids must be 1-{ID_LENGTH} characters, got {len(value)}"
    problem = text_problem(value)
    if problem is not None:
        return problem
    if "/" in value:
        return "ids must not contain '/'"
    return None


# Item ids no route can read: GET /v1/items/new and GET /v1/items/popular are the catalogue's
# lists, so an item with one of these ids could be written but never read back.
RESERVED_ITEM_IDS = frozenset({"new", "popular"})


def item_id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid item id (``None`` when it is): :func:`id_problem`'s
    rules, and none of :data:`RESERVED_ITEM_IDS`."""
    problem = id_problem(value)
    if problem is None and value in RESERVED_ITEM_IDS:
        return (
            "item ids must not be 'new' or 'popular': GET /v1/items/new and "
            "/v1/items/popular are the lists, so such an item could not be read"
        )
    return problem
