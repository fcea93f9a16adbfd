"""A user's ratings: page through them, or erase the user."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from recommender import store
from recommender.rbm import explain as rbm_explain
from recommender.store import items as store_items

from ..deps import RuntimeDep, SessionDep
from ..errors import FieldError
from ..schemas.users import (
    GenreShare,
    HiddenUnit,
    LoadingItem,
    RatingDeleted,
    UserDeleted,
    UserProfile,
    UserRating,
    UserRatingsPage,
)
from ..validation import ItemIdPath, UserIdPath
from .active_model import NO_MODEL_YET, served_model

router = APIRouter(prefix="/v1/users", tags=["users"])


@router.get("/{user_id}/ratings", response_model=UserRatingsPage)
def get_user_ratings(
    user_id: UserIdPath,
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


@router.delete("/{user_id}/ratings/{item_id}", response_model=RatingDeleted)
def delete_rating(
    user_id: UserIdPath, item_id: ItemIdPath, session: SessionDep, runtime: RuntimeDep
) -> RatingDeleted:
    """Take back one rating; the next recommendation folds in without it. 404 when the
    user has no rating of the item."""
    if not store_items.delete_rating(session, user_id=user_id, item_id=item_id):
        session.rollback()
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"user {user_id!r} has no rating of item {item_id!r}"
        )
    session.commit()
    runtime.popular.invalidate()
    return RatingDeleted(user_id=user_id, item_id=item_id, deleted=True)


@router.get(
    "/{user_id}/profile",
    response_model=UserProfile,
    responses=NO_MODEL_YET,
)
def user_profile(
    user_id: UserIdPath,
    session: SessionDep,
    runtime: RuntimeDep,
    units: Annotated[int, Query(ge=1, le=64, description="How many hidden units.")] = 3,
    items: Annotated[int, Query(ge=1, le=50, description="Items listed per unit.")] = 5,
) -> UserProfile:
    """The user's most active hidden units (engagement units, largest lift of p(on) over a
    user with no ratings), each with the items that load most on it and the genres
    (``metadata.genres``) two or more of those items share. 409 before any model exists."""
    loaded = served_model(runtime)
    model = loaded.model
    ratings = store.user_ratings(session, user_id=user_id)
    allowed = runtime.catalogue.base_mask(model)
    found = rbm_explain.profile(model, ratings, units=units, items_per_unit=items, allowed=allowed)
    listed = [item for unit in found for item, _ in unit.items]
    titles = runtime.titles.get(session, listed)
    out = []
    for unit in found:
        genres: Counter[str] = Counter()
        for item, _ in unit.items:
            values = (runtime.catalogue.metadata(item) or {}).get("genres")
            if isinstance(values, list):
                genres.update({str(g) for g in values})
        out.append(
            HiddenUnit(
                unit=unit.unit,
                activation=unit.activation,
                baseline=unit.baseline,
                items=[
                    LoadingItem(item_id=i, title=titles.get(i), weight=w) for i, w in unit.items
                ],
                genres=[
                    GenreShare(genre=g, items=n)
                    for g, n in sorted(genres.items(), key=lambda p: (-p[1], p[0]))
                    if n >= 2
                ],
            )
        )
    known = sum(1 for item in ratings if str(item) in model._item_index)
    return UserProfile(user_id=user_id, model_version=loaded.version, ratings=known, units=out)


@router.delete("/{user_id}", response_model=UserDeleted)
def delete_user(user_id: UserIdPath, session: SessionDep, runtime: RuntimeDep) -> UserDeleted:
    """Erase the user's ratings; their recommendations become cold-start at once, and
    their likes leave this process's popular list at once."""
    deleted = store.delete_user(session, user_id=user_id)
    session.commit()
    if deleted:
        runtime.popular.invalidate()
    return UserDeleted(user_id=user_id, deleted=deleted)
