"""Ratings data: the table, readers, generated sets, splits and binarization."""

from .generate import generate_interactions, generate_ratings
from .io import ML100K_GENRES, read_item_metadata, read_item_titles, read_ratings
from .ratings import Ratings, deduplicate, split_per_user, validate_ratings

__all__ = [
    "ML100K_GENRES",
    "Ratings",
    "deduplicate",
    "generate_interactions",
    "generate_ratings",
    "read_item_metadata",
    "read_item_titles",
    "read_ratings",
    "split_per_user",
    "validate_ratings",
]
