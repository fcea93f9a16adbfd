"""Recommendations and like-probabilities, from the user's current ratings (fold-in)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from recommender import store
from recommender.rbm import explain as rbm_explain

from ..catalogue import NO_FILTER, ItemFilter, parse_filter
from ..deps import RuntimeDep, SessionDep, SettingsDep, check_batch_size
from ..errors import FieldError
from ..middleware import route_path
from ..runtime import Runtime
from ..schemas.recommendations import AnonymousRequest, Prediction, Predictions, Recommendations
from ..serving import Recommendation, RecommendationRequest
from ..validation import UserIdPath, check_rating_scale, id_problem
from .active_model import NO_MODEL_YET, served_model

router = APIRouter(prefix="/v1", tags=["recommendations"])

MAX_K = 1000
K = Annotated[
    int | None,
    Query(ge=1, le=MAX_K, description="How many items to return (default RECOMMENDER_DEFAULT_K)."),
]
MAX_PREDICTION_ITEMS = 1000


Explain = Annotated[
    bool,
    Query(
        description="Add to each item the user's rated items that contributed most to its "
        "score through the hidden units (`because`), with their share."
    ),
]
EXPLAIN_TOP = 3  # rated items listed per recommended item

# GET .../recommendations parses exclude=, where= and explain= itself, documented here through
# openapi_extra: three more parameters for FastAPI to validate cost every request 20-50 us
# (measured), filtered or not, on a route whose whole server CPU is ~250 us.
FILTER_PARAMETERS = [
    {
        "name": "exclude",
        "in": "query",
        "required": False,
        "description": "Comma-separated item ids never to return (at most 1,000).",
        "schema": {"type": "string", "maxLength": 140_000},
        "example": "50,181",
    },
    {
        "name": "where",
        "in": "query",
        "required": False,
        "description": "field:value on item metadata, e.g. genres:Comedy (a list field matches "
        "when it contains the value); repeat for several conditions, all must hold. Applied "
        "before the top k.",
        "schema": {"type": "array", "items": {"type": "string"}},
        "example": ["genres:Comedy"],
    },
    {
        "name": "explain",
        "in": "query",
        "required": False,
        "description": "Add to each item the user's rated items that contributed most to its "
        "score through the hidden units (`because`), with their share.",
        "schema": {"type": "boolean", "default": False},
    },
]
_TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})  # what pydantic reads as a boolean
_FALSE = frozenset({"false", "0", "no", "off", "f", "n"})


def _query_options(request: Request) -> tuple[ItemFilter, bool]:
    """``(filter, explain)`` from the query string; 422 naming the parameter when bad."""
    query = request.query_params
    if not query or (len(query) == 1 and "k" in query):  # the common request: nothing to do
        return NO_FILTER, False
    exclude, where = query.get("exclude"), query.getlist("where")
    item_filter = parse_filter(exclude, where or None) if exclude or where else NO_FILTER
    raw = query.get("explain")
    if raw is None or raw.strip().lower() in _FALSE:
        return item_filter, False
    if raw.strip().lower() in _TRUE:
        return item_filter, True
    raise FieldError(
        "explain",
        raw,
        f"explain: Input should be a valid boolean. Received: explain={raw[:200]!r}",
        kind="bool_parsing",
    )


def _json(
    user_id: str | None, result: Recommendation, because: dict[str, list] | None = None
) -> Response:
    """The :class:`Recommendations` body, serialized directly (the hot path: no model
    validation round trip; ``response_model`` still documents it)."""
    titles = result.titles
    items = []
    for item, score in result.items:
        title = titles.get(item)
        entry = {"item_id": item, "score": score}
        if title is not None:
            entry["title"] = title
        if because is not None:
            entry["because"] = because.get(item, [])
        items.append(entry)
    body = {
        "user_id": user_id,
        "model_version": result.model_version,
        "strategy": result.strategy,
        "items": items,
    }
    return Response(orjson.dumps(body), media_type="application/json")


@router.get(
    "/users/{user_id}/recommendations",
    response_model=Recommendations,
    openapi_extra={"parameters": FILTER_PARAMETERS},
)
async def user_recommendations(user_id: UserIdPath, request: Request, k: K = None) -> Response:
    """Top ``k`` items the user has not rated; ``strategy`` says how they were chosen.
    Retired items never appear; ``exclude``/``where`` filter before the top ``k``.

    Requests in flight together are answered by one query and one scoring call.
    """
    # The hot path reads the runtime off the app instead of through RuntimeDep: each
    # dependency FastAPI solves costs ~15 us per request.
    runtime = request.app.state.runtime
    if k is None:
        k = runtime.settings.default_k
    item_filter, explain = _query_options(request)
    wanted = RecommendationRequest(k=k, user_id=user_id, item_filter=item_filter)
    return await _answer(runtime, wanted, explain)


class FastUserRecommendations:
    """The hot route's common request, ``GET /v1/users/{user_id}/recommendations[?k=N]``,
    answered without the framework's routing layers: a pure ASGI middleware, the innermost
    one (API keys, the body limit and the request metrics still see it).

    Starlette's exception middleware, its router and FastAPI's route machinery (request
    object, exit stacks, parameter solving, the response's trip back through each layer's
    ``send``) cost more event-loop time than everything else this request does there: on the
    2-vCPU AMD VM, with the 10M-shape model at 32 clients, answering here took the route from
    ~1,000 to ~1,300 requests/s (p50 31 -> 24 ms). The answer is the route's own: the same
    request, answered by the route's ``_answer`` (the batch, then the body).

    Anything else goes on to the app: another path or method, a query with more than one
    ``k`` between 1 and ``MAX_K`` (``exclude=``, ``where=``, ``explain=``, a bad ``k``), a user id
    the ``Id`` rules refuse, or an app not started. So every refusal, with its exact 422, is
    the route's; an exception raised while answering gets the app's handler for it, as the
    route's would.
    """

    PATH = re.compile(r"/v1/users/([^/]+)/recommendations")
    # scope["route"] as the router would set it, for what reads it (MetricsMiddleware: .path)
    ROUTE = SimpleNamespace(path="/v1/users/{user_id}/recommendations",
                            name="user_recommendations")

    def __init__(self, app: ASGIApp, *, api: FastAPI) -> None:
        self.app = app
        self.api = api  # its state holds the runtime, its exception_handlers the handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        match = self.PATH.fullmatch(route_path(scope))
        runtime: Runtime | None = getattr(self.api.state, "runtime", None)
        k = _plain_k(scope["query_string"], runtime) if match and runtime else None
        if (match is None or runtime is None or k is None
                or id_problem(user_id := match.group(1)) is not None):
            await self.app(scope, receive, send)
            return
        scope["route"] = self.ROUTE  # what the metrics label the request with
        try:
            response = await _answer(runtime, RecommendationRequest(k=k, user_id=user_id),
                                     explain=False)
        except Exception as exc:  # noqa: BLE001 - answered as the route's would be
            handler = self._handler(exc)
            if handler is None:
                raise  # ServerErrorMiddleware's 500, as for the route
            response = await handler(Request(scope, receive), exc)
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Any:
        """The app's handler for ``exc`` (by class, most specific first), as Starlette's
        exception middleware picks it; None for one only the server-error layer handles."""
        handlers = self.api.exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers and cls is not Exception:
                return handlers[cls]
        return None


def _plain_k(query: bytes, runtime: Runtime) -> int | None:
    """k from a query string that is empty (the default k) or exactly ``k=N`` with N in
    [1, MAX_K]; None for any other query (the route parses and checks it)."""
    if not query:
        return int(runtime.settings.default_k)
    if not query.startswith(b"k=") or not query[2:].isdigit() or len(query) > 12:
        return None
    k = int(query[2:])
    return k if 1 <= k <= MAX_K else None


async def _answer(runtime: Runtime, request: RecommendationRequest, explain: bool) -> Response:
    """Recommend, with the reasons when asked; the body for a user or a visitor."""
    result = await runtime.recommend(request)
    if explain:
        rated = request.user_id if request.ratings is None else request.ratings
        because = await run_in_threadpool(_explain, runtime, result, rated)
        return _json(request.user_id, result, because)
    return _json(request.user_id, result)


def _explain(
    runtime: Runtime, result: Recommendation, rated: str | Mapping[str, float] | None
) -> dict[str, list]:
    """``{item: [{item_id, title, contribution, share}, ...]}`` for an RBM list (empty lists
    for the popular one: no rated item made it). ``rated``: the user's id (their ratings are
    read) or the visitor's ratings."""
    model = result.model  # the one that ranked the list, even if another serves by now
    if result.strategy != "rbm" or model is None or rated is None:
        return {}
    with runtime.sessions() as session:
        ratings = store.user_ratings(session, user_id=rated) if isinstance(rated, str) else rated
        parts = rbm_explain.contributions(model, ratings, [item for item, _ in result.items])
        top = {item: found[:EXPLAIN_TOP] for item, found in parts.items()}
        titles = runtime.titles.get(session, (c.item_id for cs in top.values() for c in cs))
    out = {}
    for item, found in top.items():
        entries = []
        for c in found:
            entry = {"item_id": c.item_id, "contribution": c.contribution, "share": c.share}
            if c.item_id in titles:
                entry["title"] = titles[c.item_id]
            entries.append(entry)
        out[item] = entries
    return out


@router.post("/recommendations", response_model=Recommendations)
async def anonymous_recommendations(
    body: AnonymousRequest, runtime: RuntimeDep, settings: SettingsDep, explain: Explain = False
) -> Response:
    """Recommendations for a visitor without an account, from the ratings in the body;
    ``exclude`` and ``where`` in the body filter before the top ``k``."""
    check_batch_size("ratings", len(body.ratings), settings)
    check_rating_scale(
        ((f"ratings[{i}].rating", r.rating) for i, r in enumerate(body.ratings)), settings
    )
    ratings = {r.item_id: r.rating for r in body.ratings}
    # "k" left out of the body: the configured default, not the schema's.
    k = body.k if "k" in body.model_fields_set else settings.default_k
    item_filter = parse_filter(
        body.exclude or None, body.where, exclude_field="exclude", where_field="where"
    )
    request = RecommendationRequest(k=k, ratings=ratings, item_filter=item_filter)
    return await _answer(runtime, request, explain)


@router.get(
    "/users/{user_id}/predictions",
    response_model=Predictions,
    responses=NO_MODEL_YET,
)
def user_predictions(
    user_id: UserIdPath,
    session: SessionDep,
    runtime: RuntimeDep,
    item_ids: Annotated[str, Query(min_length=1, description="Comma-separated item ids.")],
) -> Predictions:
    """The probability that the user likes each item, from their current ratings."""
    ids = [part.strip() for part in item_ids.split(",")]
    if len(ids) > MAX_PREDICTION_ITEMS:
        raise FieldError(
            "item_ids",
            f"<{len(ids)} ids>",
            f"item_ids: at most {MAX_PREDICTION_ITEMS} ids per request. Received: {len(ids)} ids",
        )
    for position, item_id in enumerate(ids):
        problem = id_problem(item_id)
        if problem is not None:
            raise FieldError(
                f"item_ids[{position}]",
                item_id,
                f"item_ids[{position}]: {problem}. "
                f"Received: item_id={item_id[:200]!r} ({len(item_id)} characters)",
            )
    loaded = served_model(runtime)
    ratings = store.user_ratings(session, user_id=user_id)
    probabilities = loaded.model.predict_like(ratings, ids)
    return Predictions(
        user_id=user_id,
        model_version=loaded.version,
        items=[
            Prediction(item_id=item, probability=None if p is None else float(p))
            for item, p in zip(ids, probabilities, strict=True)
        ],
    )
