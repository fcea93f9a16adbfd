"""What the request path needs: the active model (hot-swapped), the popular fallback, and the
one function that turns a user's current ratings into recommendations."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session, sessionmaker

from recommender import store
from recommender.rbm import RBMRecommender

from .catalogue import NO_FILTER, Catalogue, ItemFilter, Skipped
from .metrics import ServiceMetrics
from .polling import Poller

log = logging.getLogger(__name__)

# After a failed load, wait this long before trying the same version again.
RETRY_FAILED_LOAD_S = 30.0


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to serve, with the version it came from."""

    version: str
    model: RBMRecommender
    metrics: dict[str, float] = field(default_factory=dict)


def load_artifact(directory: Path) -> RBMRecommender:
    """Load an RBM artifact for CPU serving, warmed by one scoring call (which also builds
    its serving weights) so that the first batch after a swap pays for neither."""
    model = RBMRecommender.load(directory, device="cpu")
    model.recommend([{}], k=1)
    return model


class ModelHolder(Poller):
    """Holds the model this process serves and follows the active-version row.

    ``refresh()`` reads the active version (one primary-key lookup) and, when it changed,
    loads the new artifact off the request path and swaps one reference. A background thread
    calls it every ``poll_interval_s``, so every serving process, on any host sharing the
    database and the model directory, follows an activation within that delay. A load that
    fails keeps the previous model serving.
    """

    thread_name = "model-holder"
    what = "the active model version"

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        model_dir: Path,
        *,
        poll_interval_s: float = 2.0,
        metrics: ServiceMetrics | None = None,
        loader: Callable[[Path], Any] = load_artifact,
    ) -> None:
        super().__init__()
        self._sessions = session_factory
        self.model_dir = Path(model_dir)
        self.poll_interval_s = poll_interval_s
        self._metrics = metrics
        self._loader = loader
        self._current: LoadedModel | None = None
        # One swap at a time: a refresh's read, load and install, or an activation's commit
        # and install. Re-entrant: refresh() and activate() install under it.
        self._lock = threading.RLock()
        self._failed: dict[str, float] = {}  # version -> monotonic time of the failed load
        self.last_error: str | None = None

    @property
    def current(self) -> LoadedModel | None:
        """The model to serve now (``None`` before any model exists)."""
        return self._current

    def load(self, version: str) -> LoadedModel:
        """Load ``version`` from the model directory (raises on a missing or broken artifact)."""
        with self._sessions() as session:
            row = store.get_model(session, version=version)
            metrics = dict(row.metrics) if row is not None else {}
        path = self.model_dir / version
        if not path.exists():
            raise FileNotFoundError(f"model artifact missing. Received: path={str(path)!r}")
        model = self._loader(path)
        return LoadedModel(version=version, model=model, metrics=metrics)

    def install(self, loaded: LoadedModel) -> None:
        """Serve ``loaded`` from now on."""
        with self._lock:
            self._current = loaded
            self._failed.pop(loaded.version, None)
            if self._metrics is not None:
                self._metrics.set_active_model(loaded.version, loaded.metrics)
        log.info("serving model %s", loaded.version)

    def activate(self, session: Session, loaded: LoadedModel) -> None:
        """Make ``loaded.version`` the active version, committing ``session`` (with whatever
        else it holds, e.g. a published version's row), and serve ``loaded``.

        The commit and the install happen under the swap lock. Without it a refresh that
        read the previous active version just before the commit (a finished job's, loading
        its model) could install that model after this one: the database would name one
        version and this process serve another until the next poll.
        """
        with self._lock:
            store.activate_model(session, version=loaded.version)
            session.commit()
            self.install(loaded)

    def swapping(self) -> AbstractContextManager[object]:
        """The swap lock, for a caller that writes the active version itself (publishing
        with ``activate``): taken before its write transaction begins, so that the order is
        always this lock, then the database's write lock (SQLite), as in :meth:`activate`."""
        return self._lock

    def _active_version(self) -> str | None:
        with self._sessions() as session:
            return store.active_version(session)

    def refresh(self, *, force: bool = False) -> LoadedModel | None:
        """Follow the active-version row; returns the model served afterwards."""
        version = self._active_version()
        current = self._current
        if version is None or (current is not None and current.version == version):
            return current
        with self._lock:
            # Read again under the lock: an activation may have committed and installed
            # another version while this waited, and the version read above is stale.
            version = self._active_version()
            current = self._current
            if version is None or (current is not None and current.version == version):
                return current
            failed_at = self._failed.get(version)
            if not force and failed_at is not None:
                if time.monotonic() - failed_at < RETRY_FAILED_LOAD_S:
                    return current
            try:
                loaded = self.load(version)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the old model
                self._failed[version] = time.monotonic()
                self.last_error = f"loading model {version} failed: {type(exc).__name__}: {exc}"
                log.error("%s; still serving %s", self.last_error, current and current.version)
                if self._metrics is not None:
                    self._metrics.model_loads.labels(outcome="failed").inc()
                return current
            if self._metrics is not None:
                self._metrics.model_loads.labels(outcome="loaded").inc()
            self.install(loaded)
            return loaded

class PopularItems:
    """The most-liked items, cached for ``ttl_s`` seconds per process.

    Scored like the RBM's lists, as a probability: the share of the users with ratings who
    liked the item (``likes / users``), i.e. how likely a user taken at random is to like it.
    """

    # How many popular items to cache: enough to fill k after removing a user's rated items.
    CACHED = 1000

    def __init__(self, *, like_threshold: float, ttl_s: float) -> None:
        self.like_threshold = like_threshold
        self.ttl_s = ttl_s
        self._cached: list[tuple[str, float]] = []
        self._users = 1  # users with at least one rating, when the cache was filled
        self._expires = 0.0
        self._generation = object()  # replaced by each invalidation
        self._lock = threading.Lock()

    def top(self, session: Session, *, k: int, exclude: Mapping[str, Any] | None = None) -> list:
        """The ``k`` most liked items not in ``exclude``, as ``(item_id, likes / users)``."""
        items = self._get(session)
        exclude = exclude or {}
        picked = [(item, score) for item, score in items if item not in exclude][:k]
        if len(picked) < k and len(items) >= self.CACHED:
            # A user who rated most of the cached top items: ask the database directly.
            more = self._scored(
                store.popular_items(
                    session, like_threshold=self.like_threshold, limit=k + len(exclude)
                ),
                self._users,
            )
            picked = [(item, score) for item, score in more if item not in exclude][:k]
        return picked

    def invalidate(self) -> None:
        self._generation = object()
        self._expires = 0.0

    def _get(self, session: Session) -> list[tuple[str, float]]:
        now = time.monotonic()
        if now < self._expires:
            return self._cached
        with self._lock:
            if time.monotonic() >= self._expires:
                generation = self._generation
                likes = store.popular_items(
                    session, like_threshold=self.like_threshold, limit=self.CACHED
                )
                self._users = _count_users(session)
                self._cached = self._scored(likes, self._users)
                # An invalidation during the read: serve this list, but read again next time.
                if generation is self._generation:
                    self._expires = time.monotonic() + self.ttl_s
        return self._cached

    @staticmethod
    def _scored(likes: list[tuple[str, float]], users: int) -> list[tuple[str, float]]:
        return [(item, count / max(users, 1)) for item, count in likes]


def _count_users(session: Session) -> int:
    """Users with at least one rating (the popular list's denominator)."""
    return session.scalar(select(func.count(distinct(store.Rating.user_id)))) or 0


class ItemTitles:
    """Item titles, cached per process for ``ttl_s`` seconds.

    A recommendation list names ~10 items and titles rarely change, so asking the database
    for them on every request is wasted work: a miss is fetched (one query for every missing
    id of a batch) and kept until the whole cache expires. Writes through this process
    call :meth:`invalidate`; other processes see a new title within ``ttl_s``.

    When the cache expires (or is invalidated), the next call also reads again, in the same
    query, the ids asked for since the previous expiry (the first ``REREAD_MAX`` of them),
    instead of leaving each batch after it to miss on its own items. Measured with the
    10M-shape set at 32 clients: each of the dozen batches after an expiry spent 1.5-2 ms on
    its own titles query, every ``ttl_s``. Ids nobody asked for in a whole period are not
    read again. (An invalidation while such a read is under way loses the list: the batches
    after it miss one by one, as before; no stale title is kept either way.)
    """

    # Forget everything past this many entries (a bound on memory for huge catalogues).
    MAX_ENTRIES = 200_000
    # Read at most this many ids again at expiry: one query in the request path (2,000 ids:
    # ~7 ms on PostgreSQL or SQLite, with titles; once per ttl_s, not per batch).
    REREAD_MAX = 2_000

    def __init__(self, *, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._titles: dict[str, str | None] = {}  # None: known to have no title
        self._expires = 0.0
        self._asked: dict[str, None] = {}  # ids asked for since the last expiry, in order
        self._lock = threading.Lock()

    def get(self, session: Session, item_ids: Iterable[str]) -> dict[str, str]:
        """``{item_id: title}`` for those of ``item_ids`` that have a title."""
        ids = list(dict.fromkeys(item_ids))
        if self.ttl_s <= 0:
            return store.item_titles(session, item_ids=ids)
        reread: list[str] = []
        with self._lock:
            now = self._clock()
            if now >= self._expires or len(self._titles) > self.MAX_ENTRIES:
                reread = list(self._asked)[: self.REREAD_MAX]
                self._asked = {}
                self._titles = {}
                self._expires = now + self.ttl_s
            known = self._titles
            if len(self._asked) < self.REREAD_MAX:
                self._asked.update(dict.fromkeys(ids))
        missing = [item for item in ids if item not in known]
        if reread:
            missing = list(dict.fromkeys([*missing, *reread]))
        if missing:
            # A write committed after ``known`` was taken invalidates into a new dict, not
            # this one. (The caller's read must not predate its invalidation: on SQLite a
            # transaction reads one snapshot, so recommend_many ends its ratings read first.)
            found = store.item_titles(session, item_ids=missing)
            with self._lock:
                for item in missing:
                    known[item] = found.get(item)
        out = {}
        for item in ids:
            title = known.get(item)
            if title is not None:
                out[item] = title
        return out

    def invalidate(self) -> None:
        """Forget every title (the next :meth:`get` also reads again the ids asked for since
        the last expiry)."""
        with self._lock:
            self._titles = {}
            self._expires = 0.0


@dataclass(frozen=True, slots=True)
class RecommendationRequest:
    """One request: a stored user's (``user_id``) or a visitor's ratings given in the body."""

    k: int
    user_id: str | None = None
    ratings: Mapping[str, float] | None = None  # None: read the user's ratings from the store
    item_filter: ItemFilter = NO_FILTER  # exclude= / where=: applied before the top k


@dataclass(frozen=True)
class Recommendation:
    strategy: Literal["rbm", "popular"]
    model_version: str | None
    items: list[tuple[str, float]]
    titles: Mapping[str, str] = field(default_factory=dict)  # of the items that have one
    # The model that ranked an "rbm" list (explanations use it, not whichever model serves
    # by the time they are computed).
    model: Any = field(default=None, repr=False, compare=False)


def recommend_many(
    session: Session,
    requests: Sequence[RecommendationRequest],
    *,
    holder: ModelHolder,
    popular: PopularItems,
    titles: ItemTitles | None = None,
    catalogue: Catalogue | None = None,
) -> list[Recommendation | Exception]:
    """Recommendations for a batch of requests: one query reads every stored user's ratings,
    one ``model.recommend`` call folds all of them in, one query (or the cache) names the items.

    Each list never contains an item its user rated; a user with no ratings, or any user
    before a model exists, gets the most popular items. A request whose ratings the model
    refuses gets its exception back; the others are answered. With a ``catalogue``, retired
    items and items the request's filter rules out are masked before the top k.
    """
    loaded = holder.current  # one model for the whole batch, whatever swaps meanwhile
    version = loaded.version if loaded else None
    wanted = list(dict.fromkeys(
        r.user_id for r in requests if r.ratings is None and r.user_id is not None))
    stored = store.ratings_of_users(session, user_ids=wanted) if wanted else {}
    # End that read: the connection goes back to the pool while the batch is scored, and on
    # SQLite the popular list and the titles below are read in a new snapshot, not in one
    # older than an invalidation made meanwhile (it would keep a stale title for its TTL).
    session.rollback()
    ratings: list[Mapping[str, float]] = [
        r.ratings if r.ratings is not None
        else stored.get(r.user_id, {}) if r.user_id is not None else {}
        for r in requests
    ]
    results: list[Recommendation | Exception | None] = [None] * len(requests)

    scored = [i for i, rated in enumerate(ratings) if rated] if loaded is not None else []
    if scored and loaded is not None:
        k = max(requests[i].k for i in scored)  # the top k of the top max-k: one call
        allowed = _allowed(loaded.model, [requests[i] for i in scored], catalogue)
        try:
            lists: list = loaded.model.recommend(
                [ratings[i] for i in scored],
                k=k,
                **({} if allowed is None else {"allowed": allowed}),
            )
        except ValueError:
            lists = [
                _recommend_one(loaded.model, ratings[i], k, _row(allowed, row))
                for row, i in enumerate(scored)
            ]
        for i, items in zip(scored, lists, strict=True):
            if isinstance(items, Exception):
                results[i] = items
                continue
            rated = ratings[i]
            top = [(item, float(score)) for item, score in items if item not in rated]
            results[i] = Recommendation("rbm", version, top[: requests[i].k],
                                        model=loaded.model)
    for i, request in enumerate(requests):
        if results[i] is None:
            skip = ratings[i]
            if catalogue is not None and (catalogue.retired or request.item_filter):
                skip = Skipped(catalogue, ratings[i], request.item_filter)
            top = popular.top(session, k=request.k, exclude=skip)
            results[i] = Recommendation("popular", version, top)

    answered: list[Recommendation | Exception] = []
    for r in results:
        assert r is not None  # every request got a list or its error above
        answered.append(r)
    if titles is None:
        return answered
    named = titles.get(
        session,
        (item for r in answered if isinstance(r, Recommendation) for item, _ in r.items),
    )
    return [
        Recommendation(
            r.strategy,
            r.model_version,
            r.items,
            {item: named[item] for item, _ in r.items if item in named},
            r.model,
        )
        if isinstance(r, Recommendation)
        else r
        for r in answered
    ]


def _allowed(model: Any, requests: Sequence[RecommendationRequest], catalogue: Any) -> Any:
    """The mask for one scoring call: ``None`` (nothing retired, no filters: the fast path),
    ``(n_items,)`` shared by every request, or ``(requests, n_items)``."""
    if catalogue is None:
        return None
    if not any(r.item_filter for r in requests):
        return catalogue.base_mask(model)
    masks = [catalogue.mask(model, r.item_filter) for r in requests]
    full = torch.ones(model.n_items, dtype=torch.bool, device=model.W.device)
    return torch.stack([full if m is None else m for m in masks])


def _row(allowed: Any, row: int) -> Any:
    return allowed[row] if allowed is not None and allowed.dim() == 2 else allowed


def _recommend_one(
    model: Any, ratings: Mapping[str, float], k: int, allowed: Any = None
) -> list | Exception:
    try:
        (items,) = model.recommend(
            [ratings], k=k, **({} if allowed is None else {"allowed": allowed})
        )
    except ValueError as exc:
        return exc
    return items


def recommend(
    session: Session,
    *,
    ratings: Mapping[str, float],
    k: int,
    holder: ModelHolder,
    popular: PopularItems,
) -> Recommendation:
    """Recommendations from one user's current ratings (see :func:`recommend_many`)."""
    (result,) = recommend_many(
        session, [RecommendationRequest(k=k, ratings=ratings)], holder=holder, popular=popular
    )
    if isinstance(result, Exception):
        raise result
    return result
