"""One router per resource."""

from . import admin, health, items, ratings, recommendations, users

__all__ = ["admin", "health", "items", "ratings", "recommendations", "users"]
