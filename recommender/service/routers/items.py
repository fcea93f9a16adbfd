"""The catalogue: titles and JSON metadata, one item or many."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from recommender import store

from ..deps import RuntimeDep, SessionDep, SettingsDep, check_batch_size
from ..schemas import ItemBatch, ItemIn, ItemOut, Received
from ..validation import ItemIdPath

router = APIRouter(prefix="/v1/items", tags=["items"])

ItemId = ItemIdPath  # the one Id type (validation.Id): 1-128 characters, no NUL, no "/"


def _out(item: store.Item) -> ItemOut:
    return ItemOut(item_id=item.item_id, title=item.title, metadata=item.meta)


@router.put("/{item_id}", response_model=ItemOut)
def put_item(item_id: ItemId, body: ItemIn, session: SessionDep, runtime: RuntimeDep) -> ItemOut:
    """Create or replace one item's title and metadata."""
    store.upsert_items(
        session, items=[store.ItemRow(item_id, title=body.title, metadata=body.metadata)]
    )
    session.commit()
    runtime.titles.invalidate()
    return ItemOut(item_id=item_id, title=body.title, metadata=body.metadata)


@router.post("", response_model=Received)
def post_items(
    body: ItemBatch, session: SessionDep, runtime: RuntimeDep, settings: SettingsDep
) -> Received:
    """Create or replace up to ``RECOMMENDER_MAX_BATCH`` items at once (all or nothing)."""
    check_batch_size("items", len(body.items), settings)
    count = store.upsert_items(
        session,
        items=[store.ItemRow(i.item_id, title=i.title, metadata=i.metadata) for i in body.items],
    )
    session.commit()
    runtime.titles.invalidate()
    return Received(received=count)


@router.get("/{item_id}", response_model=ItemOut)
def get_item(item_id: ItemId, session: SessionDep) -> ItemOut:
    item = store.get_item(session, item_id=item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no item {item_id!r}")
    return _out(item)
