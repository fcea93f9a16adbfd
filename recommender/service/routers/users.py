"""A user's ratings: page through them, or erase the user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from recommender import store

from ..deps import SessionDep
from ..errors import FieldError
from ..schemas import UserDeleted, UserRating, UserRatingsPage
from ..validation import UserIdPath

router = APIRouter(prefix="/v1/users", tags=["users"])

UserId = UserIdPath  # the one Id type (validation.Id): 1-128 characters, no NUL, no "/"


@router.get("/{user_id}/ratings", response_model=UserRatingsPage)
def get_user_ratings(
    user_id: UserId,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Ratings per page.")] = 100,
    cursor: Annotated[
        str | None,
        Query(max_length=400, description="The next_cursor of the previous page."),
    ] = None,
) -> UserRatingsPage:
    """The user's ratings in item-id order, ``limit`` per page; pass ``next_cursor`` on."""
    try:
        rows, next_cursor = store.list_user_ratings(
            session, user_id=user_id, limit=limit, cursor=cursor
        )
    except ValueError as exc:
        raise FieldError("cursor", cursor, str(exc)) from exc
    return UserRatingsPage(
        items=[UserRating(item_id=r.item_id, rating=r.value, timestamp=r.timestamp) for r in rows],
        next_cursor=next_cursor,
    )


@router.delete("/{user_id}", response_model=UserDeleted)
def delete_user(user_id: UserId, session: SessionDep) -> UserDeleted:
    """Erase the user's ratings; their recommendations become cold-start at once."""
    deleted = store.delete_user(session, user_id=user_id)
    session.commit()
    return UserDeleted(user_id=user_id, deleted=deleted)
