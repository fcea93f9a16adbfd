"""The catalogue: titles and JSON metadata, one item or many; changing some of an item's fields;
retiring items; the lists a front page needs (popular, new) and similar items.

Route order matters: ``/popular`` and ``/new`` are declared before ``/{item_id}`` so they are
not taken for item ids. An item id that is written (PUT, POST, a rating) may therefore not be
``new`` or ``popular`` (422 naming the field): GET /v1/items/{item_id} could not read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy.orm import Session

from recommender import store
from recommender.rbm import similar
from recommender.store import items as store_items

from ..catalogue import ItemFilter, Skipped, parse_filter
from ..deps import RuntimeDep, SessionDep, SettingsDep, check_batch_size
from ..merge_patch import merge_patch
from ..runtime import Runtime
from ..schemas.common import Received
from ..schemas.items import (
    ItemBatch,
    ItemIn,
    ItemList,
    ItemOut,
    ItemPatch,
    ItemRetired,
    ItemsPage,
    ListedItem,
    SimilarItems,
)
from ..validation import FieldError, ItemIdInPath, ItemIdPath

router = APIRouter(prefix="/v1/items", tags=["items"])

ListK = Annotated[int, Query(ge=1, le=1000, description="How many items to return.")]
Exclude = Annotated[
    str | None,
    Query(
        max_length=140_000,
        description="Comma-separated item ids never to return.",
        examples=["50,181"],
    ),
]
Where = Annotated[
    list[str] | None,
    Query(
        examples=["genres:Comedy"],
        description="field:value on item metadata, e.g. genres:Comedy (a list field matches "
        "when it contains the value); repeat for several conditions, all must hold.",
    ),
]


@dataclass(frozen=True, slots=True)
class ListQuery:
    """What every list route reads from the query string: how many, and the filter."""

    k: int
    item_filter: ItemFilter


def list_query(k: ListK = 10, exclude: Exclude = None, where: Where = None) -> ListQuery:
    return ListQuery(k, parse_filter(exclude, where))


ListQueryDep = Annotated[ListQuery, Depends(list_query)]


def _out(item: store.Item | store_items.CatalogueEntry) -> ItemOut:
    metadata = item.meta if isinstance(item, store.Item) else item.metadata
    return ItemOut(
        item_id=item.item_id,
        title=item.title,
        metadata=metadata,
        active=item.active,
        created=item.created,
    )


def _write(session: Session, runtime: Runtime, items: list[store.ItemRow]) -> int:
    """Write ``items`` and commit; this process sees the change at once (titles, retired
    items, metadata filters), the others within a poll interval."""
    count = store.upsert_items(session, items=items)
    session.commit()
    session.expire_all()  # rows read before (PATCH) are stale: the upsert went around the ORM
    runtime.titles.invalidate()
    runtime.catalogue.refresh(session)
    return count


def _stored(session: Session, item_id: str) -> ItemOut:
    item = store.get_item(session, item_id=item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no item {item_id!r}")
    return _out(item)


def _write_one(session: Session, runtime: Runtime, row: store.ItemRow) -> ItemOut:
    """Write one item (as :func:`_write`) and answer it as stored."""
    _write(session, runtime, [row])
    return _stored(session, row.item_id)


@router.put("/{item_id}", response_model=ItemOut)
def put_item(
    item_id: ItemIdInPath, body: ItemIn, session: SessionDep, runtime: RuntimeDep
) -> ItemOut:
    """Create or replace one item: its title and metadata become the body's (omitted: none);
    ``active`` and ``created`` change only when given. ``PATCH`` changes only the fields it
    carries."""
    row = store.ItemRow(
        item_id, title=body.title, metadata=body.metadata, active=body.active, created=body.created
    )
    return _write_one(session, runtime, row)


@router.patch("/{item_id}", response_model=ItemOut)
def patch_item(
    item_id: ItemIdPath, body: ItemPatch, session: SessionDep, runtime: RuntimeDep
) -> ItemOut:
    """Change only the fields the body carries (a JSON merge patch, RFC 7396): ``title``
    replaced (null removes it), ``metadata`` merged key by key (a key set to null is removed,
    an object merges recursively; null removes all metadata), ``active`` and ``created``
    replaced (null or omitted: kept). ``{"active": false}`` retires the item and keeps its
    title and metadata. 404 for an item that is neither registered nor rated."""
    # Lock the row before reading it: on SQLite the write lock (a read transaction that then
    # writes fails at once when another connection wrote in between), on PostgreSQL the row
    # (SELECT ... FOR UPDATE), so that two patches of the metadata both count.
    item = store_items.lock_item(session, item_id=item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no item {item_id!r}")
    changed = body.model_fields_set
    title, metadata = item.title, item.meta
    if "title" in changed:
        title = body.title
    if "metadata" in changed:
        metadata = merge_patch(metadata, body.metadata)
    row = store.ItemRow(
        item_id, title=title, metadata=metadata, active=body.active, created=body.created
    )
    return _write_one(session, runtime, row)


@router.post("", response_model=Received)
def post_items(
    body: ItemBatch, session: SessionDep, runtime: RuntimeDep, settings: SettingsDep
) -> Received:
    """Create or replace up to ``RECOMMENDER_MAX_BATCH`` items at once (all or nothing), each
    as ``PUT`` does."""
    check_batch_size("items", len(body.items), settings)
    rows = [
        store.ItemRow(
            i.item_id, title=i.title, metadata=i.metadata, active=i.active, created=i.created
        )
        for i in body.items
    ]
    return Received(received=_write(session, runtime, rows))


@router.get("", response_model=ItemsPage)
def list_items(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page.")] = 100,
    cursor: Annotated[
        str | None, Query(max_length=400, description="The next_cursor of the previous page.")
    ] = None,
) -> ItemsPage:
    """Every item, registered or only rated, retired ones included (``active``), in id
    order, ``limit`` per page; pass ``next_cursor`` on."""
    try:
        page, next_cursor = store_items.list_items(session, limit=limit, cursor=cursor)
    except ValueError as exc:
        raise FieldError("cursor", cursor, str(exc)) from exc
    return ItemsPage(items=[_out(entry) for entry in page], next_cursor=next_cursor)


def _listed(runtime: Runtime, session: Session, pairs: list[tuple[str, float]]) -> list[ListedItem]:
    titles = runtime.titles.get(session, (item for item, _ in pairs))
    return [ListedItem(item_id=i, score=float(s), title=titles.get(i)) for i, s in pairs]


def _first_allowed(
    runtime: Runtime, pairs: Iterable[tuple[str, float]], query: ListQuery
) -> list[tuple[str, float]]:
    """The first ``query.k`` of ``pairs`` (best first) that the catalogue allows."""
    allows = runtime.catalogue.allows
    allowed = ((item, float(score)) for item, score in pairs if allows(item, query.item_filter))
    return list(islice(allowed, query.k))


@router.get("/popular", response_model=ItemList)
def popular_items(session: SessionDep, runtime: RuntimeDep, query: ListQueryDep) -> ItemList:
    """The most liked items (the list served before anyone has rated), without retired
    items; filters apply before the top ``k``."""
    skipped = Skipped(runtime.catalogue, {}, query.item_filter)
    top = runtime.popular.top(session, k=query.k, exclude=skipped)
    return ItemList(strategy="popular", items=_listed(runtime, session, top))


@router.get("/new", response_model=ItemList)
def new_items(session: SessionDep, runtime: RuntimeDep, query: ListQueryDep) -> ItemList:
    """The newest items by their ``created`` time, else their first rating (else when they
    were registered), without retired items; the score is that unix time."""
    newest = _first_allowed(runtime, runtime.catalogue.newest(session), query)
    return ItemList(strategy="new", items=_listed(runtime, session, newest))


@router.get("/{item_id}/similar", response_model=SimilarItems)
def similar_items(
    item_id: ItemIdPath, session: SessionDep, runtime: RuntimeDep, query: ListQueryDep
) -> SimilarItems:
    """The items most related to ``item_id``: the cosine of their engagement weights in the
    active RBM ("rated by the same kind of user"; see ``recommender/rbm/similar.py`` for why
    not a one-item fold-in). Before any model knows the item: how many users rated both
    (``strategy: cooccurrence``). Retired items never appear; filters apply before the top
    ``k``. 404 for an item that is neither registered nor rated."""
    loaded = runtime.models.current
    if loaded is not None and item_id in loaded.model._item_index:
        model = loaded.model
        mask = runtime.catalogue.mask(model, query.item_filter)
        found = similar.top_similar(model, model._item_index[item_id], query.k, mask)
        pairs = [(model.item_ids[j], score) for j, score in found]
        strategy = "rbm"
    else:
        if not store_items.item_known(session, item_id=item_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no item {item_id!r}")
        both = store_items.cooccurring_items(session, item_id=item_id)
        pairs = _first_allowed(runtime, both, query)
        strategy = "cooccurrence"
    return SimilarItems(
        item_id=item_id,
        model_version=loaded.version if loaded is not None else None,
        strategy=strategy,
        items=_listed(runtime, session, pairs),
    )


@router.delete("/{item_id}", response_model=ItemRetired)
def retire_item(
    item_id: ItemIdPath,
    session: SessionDep,
    runtime: RuntimeDep,
    erase_ratings: Annotated[
        bool,
        Query(description="Also erase the item's ratings (default: they stay for training)."),
    ] = False,
) -> ItemRetired:
    """Retire an item: from now on it is never recommended nor returned as similar, in this
    process at once and in every serving process within the model poll interval, with no
    retrain. Its ratings stay for training unless ``erase_ratings=true``. ``PATCH`` with
    ``"active": true`` restores it. 404 for an item that is neither registered nor rated."""
    # The check and the write share one write transaction: on SQLite a read transaction that
    # then writes cannot wait for the lock (it fails at once with "database is locked" when
    # another connection wrote in between), so the write lock is taken before the read.
    store.begin_write(session)
    if not store_items.item_known(session, item_id=item_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no item {item_id!r}")
    # Ratings first: retiring bumps the catalogue version, whose row lock (PostgreSQL) then
    # lasts only until the commit, not through a long delete.
    deleted = store_items.delete_item_ratings(session, item_id=item_id) if erase_ratings else 0
    store_items.set_item_active(session, item_id=item_id, active=False)
    session.commit()
    runtime.catalogue.refresh(session)
    if deleted:
        runtime.popular.invalidate()
    return ItemRetired(item_id=item_id, active=False, ratings_deleted=deleted)


@router.get("/{item_id}", response_model=ItemOut)
def get_item(item_id: ItemIdPath, session: SessionDep) -> ItemOut:
    """The item's title, metadata and state, as ``GET /v1/items`` lists it: an item that is
    only rated (never PUT) is active, with no title or metadata. 404 for an item that is
    neither registered nor rated."""
    entry = store_items.catalogue_entry(session, item_id=item_id)
    if entry is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no item {item_id!r}")
    return _out(entry)
