"""Checks that depend on the configuration (so they cannot live in the static schemas)."""

from __future__ import annotations

from collections.abc import Iterable

from .errors import FieldError
from .settings import Settings


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
