"""POST /v1/ratings: one rating or a batch of up to 10,000, all or nothing."""

from __future__ import annotations

import time
from collections.abc import Iterable

from fastapi import APIRouter

from recommender import store

from ..deps import RuntimeDep, SessionDep, SettingsDep, check_batch_size
from ..schemas.common import Received
from ..schemas.ratings import RatingBatch, RatingIn, RatingsBody
from ..validation import check_rating_scale

router = APIRouter(prefix="/v1/ratings", tags=["ratings"])


@router.post("", response_model=Received)
def post_ratings(
    body: RatingsBody, session: SessionDep, settings: SettingsDep, runtime: RuntimeDep
) -> Received:
    """Store ratings; posting a (user, item) again replaces its rating and timestamp.

    The whole body is validated first and written in one statement and one transaction:
    one bad rating and nothing is written.
    """
    if isinstance(body, RatingBatch):
        ratings: list[RatingIn] = body.ratings
        check_batch_size("ratings", len(ratings), settings)
        fields: Iterable[str] = (f"ratings[{i}].rating" for i in range(len(ratings)))
    else:
        ratings = [body]
        fields = ("rating",)
    check_rating_scale(zip(fields, (r.rating for r in ratings), strict=False), settings)
    now = int(time.time())
    rows = [
        store.RatingRow(
            r.user_id, r.item_id, r.rating, r.timestamp if r.timestamp is not None else now
        )
        for r in ratings
    ]
    store.upsert_ratings(session, ratings=rows)
    session.commit()
    runtime.metrics.ratings_received.inc(len(rows))
    return Received(received=len(rows))
