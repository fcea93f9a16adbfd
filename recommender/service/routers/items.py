"""The catalogue: titles and JSON metadata, one item or many; retiring items; the lists a
front page needs (popular, new) and similar items.

Route order matters: ``/popular`` and ``/new`` are declared before ``/{item_id}`` so they are
not taken for item ids (an item called "popular" or "new" is still written and listed, but
``GET /v1/items/popular`` answers the list)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from recommender import store
from recommender.rbm import similar
from recommender.store import items as store_items

from ..catalogue import ItemFilter, Skipped, parse_filter
from ..deps import RuntimeDep, SessionDep, SettingsDep, check_batch_size
from ..schemas import (
    ItemBatch,
    ItemIn,
    ItemList,
    ItemOut,
    ItemRetired,
    ItemsPage,
    ListedItem,
    Received,
    SimilarItems,
)
from ..validation import FieldError, ItemIdPath

router = APIRouter(prefix="/v1/items", tags=["items"])

ItemId = ItemIdPath  # the one Id type (validation.Id): 1-128 characters, no NUL, no "/"


def _out(item: store.Item) -> ItemOut:
    return ItemOut(
        item_id=item.item_id,
        title=item.title,
        metadata=item.meta,
        active=item.active,
        created=item.created,
    )


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


@router.put("/{item_id}", response_model=ItemOut)
def put_item(item_id: ItemId, body: ItemIn, session: SessionDep, runtime: RuntimeDep) -> ItemOut:
    """Create or replace one item's title and metadata."""
    store.upsert_items(
        session,
        items=[
            store.ItemRow(
                item_id,
                title=body.title,
                metadata=body.metadata,
                active=body.active,
                created=body.created,
            )
        ],
    )
    session.commit()
    runtime.titles.invalidate()
    if runtime.catalogue is not None:
        runtime.catalogue.refresh(session)  # this process at once, the others within a poll
    item = store.get_item(session, item_id=item_id)
    return _out(item)


@router.post("", response_model=Received)
def post_items(
    body: ItemBatch, session: SessionDep, runtime: RuntimeDep, settings: SettingsDep
) -> Received:
    """Create or replace up to ``RECOMMENDER_MAX_BATCH`` items at once (all or nothing)."""
    check_batch_size("items", len(body.items), settings)
    count = store.upsert_items(
        session,
        items=[
            store.ItemRow(
                i.item_id, title=i.title, metadata=i.metadata, active=i.active, created=i.created
            )
            for i in body.items
        ],
    )
    session.commit()
    runtime.titles.invalidate()
    if runtime.catalogue is not None:
        runtime.catalogue.refresh(session)
    return Received(received=count)


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
    return ItemsPage(
        items=[
            ItemOut(
                item_id=e.item_id,
                title=e.title,
                metadata=e.metadata,
                active=e.active,
                created=e.created,
            )
            for e in page
        ],
        next_cursor=next_cursor,
    )


def _scored(runtime, session, pairs: list[tuple[str, float]]) -> list[ListedItem]:
    titles = runtime.titles.get(session, (item for item, _ in pairs))
    return [ListedItem(item_id=i, score=float(s), title=titles.get(i)) for i, s in pairs]


@router.get("/popular", response_model=ItemList)
def popular_items(
    session: SessionDep,
    runtime: RuntimeDep,
    k: ListK = 10,
    exclude: Exclude = None,
    where: Where = None,
) -> ItemList:
    """The most liked items (the list served before anyone has rated), without retired
    items; filters apply before the top ``k``."""
    item_filter = parse_filter(exclude, where)
    top = runtime.popular.top(session, k=k, exclude=Skipped(runtime.catalogue, {}, item_filter))
    return ItemList(strategy="popular", items=_scored(runtime, session, top))


@router.get("/new", response_model=ItemList)
def new_items(
    session: SessionDep,
    runtime: RuntimeDep,
    k: ListK = 10,
    exclude: Exclude = None,
    where: Where = None,
) -> ItemList:
    """The newest items by their ``created`` time, else their first rating (else when they
    were registered), without retired items; the score is that unix time."""
    item_filter = parse_filter(exclude, where)
    catalogue = runtime.catalogue
    picked = []
    for item, created in catalogue.newest(session):
        if catalogue.allows(item, item_filter):
            picked.append((item, float(created)))
            if len(picked) == k:
                break
    return ItemList(strategy="new", items=_scored(runtime, session, picked))


@router.get("/{item_id}/similar", response_model=SimilarItems)
def similar_items(
    item_id: ItemId,
    session: SessionDep,
    runtime: RuntimeDep,
    k: ListK = 10,
    exclude: Exclude = None,
    where: Where = None,
) -> SimilarItems:
    """The items most related to ``item_id``: the cosine of their engagement weights in the
    active RBM ("rated by the same kind of user"; see ``recommender/rbm/similar.py`` for why
    not a one-item fold-in). Before any model knows the item: how many users rated both
    (``strategy: cooccurrence``). Retired items never appear; filters apply before the top
    ``k``. 404 for an item that is neither registered nor rated."""
    item_filter = parse_filter(exclude, where)
    loaded = runtime.models.current
    index = loaded.model._item_index.get(item_id) if loaded is not None else None
    if index is not None:
        mask = runtime.catalogue.mask(loaded.model, item_filter)
        ids = loaded.model.item_ids
        pairs = [(ids[j], s) for j, s in similar.top_similar(loaded.model, index, k, mask)]
        strategy = "rbm"
    else:
        if not store_items.item_known(session, item_id=item_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no item {item_id!r}")
        pairs = _cooccurring(session, runtime, item_id, item_filter, k)
        strategy = "cooccurrence"
    return SimilarItems(
        item_id=item_id,
        model_version=loaded.version if loaded is not None else None,
        strategy=strategy,
        items=_scored(runtime, session, pairs),
    )


def _cooccurring(session, runtime, item_id: str, item_filter: ItemFilter, k: int) -> list:
    picked = []
    for other, both in store_items.cooccurring_items(session, item_id=item_id):
        if runtime.catalogue.allows(other, item_filter):
            picked.append((other, float(both)))
            if len(picked) == k:
                break
    return picked


@router.delete("/{item_id}", response_model=ItemRetired)
def retire_item(
    item_id: ItemId,
    session: SessionDep,
    runtime: RuntimeDep,
    erase_ratings: Annotated[
        bool,
        Query(description="Also erase the item's ratings (default: they stay for training)."),
    ] = False,
) -> ItemRetired:
    """Retire an item: from now on it is never recommended nor returned as similar, in this
    process at once and in every serving process within the model poll interval, with no
    retrain. Its ratings stay for training unless ``erase_ratings=true``. ``PUT`` with
    ``"active": true`` restores it. 404 for an item that is neither registered nor rated."""
    # The check and the write share one write transaction: on SQLite a read transaction that
    # then writes cannot wait for the lock (it fails at once with "database is locked" when
    # another connection wrote in between), so the write lock is taken before the read.
    store.begin_write(session)
    if not store_items.item_known(session, item_id=item_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no item {item_id!r}")
    store_items.set_item_active(session, item_id=item_id, active=False)
    deleted = store_items.delete_item_ratings(session, item_id=item_id) if erase_ratings else 0
    session.commit()
    runtime.catalogue.refresh(session)
    if deleted:
        runtime.popular.invalidate()
    return ItemRetired(item_id=item_id, active=False, ratings_deleted=deleted)


@router.get("/{item_id}", response_model=ItemOut)
def get_item(item_id: ItemId, session: SessionDep) -> ItemOut:
    item = store.get_item(session, item_id=item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no item {item_id!r}")
    return _out(item)
