"""Catalogue state every serving process keeps in memory: retired items, item metadata (for
``where`` filters), the masks built from them, and the "new" list.

Retiring an item is one UPDATE in the store; every serving process re-reads the retired set
within ``poll_interval_s`` (the model poll interval): a background thread polls one aggregate
(:func:`store.items.catalogue_fingerprint`) and re-reads the retired ids and the metadata
only when it changed. Requests never query for them: the recommendation path turns the
retired set and a request's filter into a bool mask over the model's items, cached per
(model, filter), and applies it to the scores before the top-k.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from sqlalchemy.orm import Session, sessionmaker

from recommender.store import items as store_items

from .polling import Poller
from .validation import ID_LENGTH, FieldError

MAX_EXCLUDE = 1000  # ids in one exclude= list
MAX_WHERE = 10  # conditions in one filter


@dataclass(frozen=True, slots=True)
class ItemFilter:
    """What a list may contain: not the ``exclude`` ids, and only items whose metadata match
    every ``(field, value)`` of ``where`` (a list field matches when it contains the value;
    values compare as text)."""

    exclude: frozenset[str] = frozenset()
    where: tuple[tuple[str, str], ...] = ()

    def matches(self, metadata: Mapping[str, Any] | None) -> bool:
        """Whether metadata pass ``where`` (``exclude`` is checked separately)."""
        if not self.where:
            return True
        if not metadata:
            return False
        for name, wanted in self.where:
            value = metadata.get(name)
            values = value if isinstance(value, list | tuple) else [value]
            if not any(value is not None and _text(value) == wanted for value in values):
                return False
        return True

    def __bool__(self) -> bool:
        return bool(self.exclude or self.where)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


NO_FILTER = ItemFilter()


def parse_filter(
    exclude: str | list[str] | None,
    where: Iterable[str] | Mapping[str, Any] | None,
    *,
    exclude_field: str = "exclude",
    where_field: str = "where",
) -> ItemFilter:
    """An :class:`ItemFilter` from ``?exclude=a,b`` (or a list) and ``?where=field:value``
    (repeatable) or a JSON object ``{"field": "value"}``; :class:`FieldError` naming the
    field and value on bad input (the HTTP layer answers 422)."""
    if exclude is None:
        ids: list[str] = []
    elif isinstance(exclude, str):
        ids = [part.strip() for part in exclude.split(",")] if exclude.strip() else []
    else:
        ids = list(exclude)
    if len(ids) > MAX_EXCLUDE:
        raise FieldError(
            exclude_field,
            f"<{len(ids)} ids>",
            f"{exclude_field}: at most {MAX_EXCLUDE} ids. Received: {len(ids)} ids",
        )
    for position, item_id in enumerate(ids):
        if not 1 <= len(item_id) <= ID_LENGTH:
            raise FieldError(
                f"{exclude_field}[{position}]",
                item_id,
                f"{exclude_field}[{position}]: ids must be 1-{ID_LENGTH} characters. "
                f"Received: item_id={item_id[:200]!r} ({len(item_id)} characters)",
            )
    conditions: list[tuple[str, str]] = []
    if isinstance(where, Mapping):
        for name, value in where.items():
            if not isinstance(value, str | int | float | bool) or not str(name):
                raise FieldError(
                    f"{where_field}.{name}",
                    value,
                    f"{where_field}.{name}: a filter value must be a string, number or "
                    f"boolean. Received: {name}={value!r}",
                )
            conditions.append((str(name), _text(value)))
    elif where is not None:
        for condition in where:
            name, sep, value = condition.partition(":")
            if not sep or not name.strip() or not value.strip():
                raise FieldError(
                    where_field,
                    condition,
                    f"{where_field} must look like field:value (e.g. genres:Comedy). "
                    f"Received: {where_field}={condition[:200]!r}",
                )
            conditions.append((name.strip(), value.strip()))
    if len(conditions) > MAX_WHERE:
        raise FieldError(
            where_field,
            f"<{len(conditions)} conditions>",
            f"{where_field}: at most {MAX_WHERE} conditions. Received: {len(conditions)}",
        )
    return ItemFilter(frozenset(ids), tuple(sorted(conditions)))


@dataclass
class _State:
    fingerprint: Any = None
    retired: frozenset[str] = frozenset()
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    generation: int = 0


class Catalogue(Poller):
    """Per-process catalogue state (see the module docstring)."""

    thread_name = "catalogue"
    what = "the catalogue for retired items"

    MAX_MASKS = 256  # cached filter masks per model

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        poll_interval_s: float = 2.0,
        lists_ttl_s: float = 30.0,
    ) -> None:
        super().__init__()
        self._sessions = session_factory
        self.poll_interval_s = poll_interval_s
        self.lists_ttl_s = lists_ttl_s
        self._state = _State()
        self._lock = threading.Lock()
        # One refresh at a time, from its read to its install: a refresh that starts later
        # reads later data and installs after the earlier one, never before it.
        self._refresh_lock = threading.Lock()
        # model -> {(generation, where): mask}: the masks go with the model they index.
        self._masks: weakref.WeakKeyDictionary[Any, OrderedDict] = weakref.WeakKeyDictionary()
        self._new: tuple[float, list[tuple[str, int]]] = (0.0, [])

    # -- state --------------------------------------------------------------------------
    @property
    def retired(self) -> frozenset[str]:
        return self._state.retired

    def metadata(self, item_id: str) -> dict[str, Any] | None:
        return self._state.metadata.get(item_id)

    def refresh(self, session: Session | None = None, *, force: bool = False) -> bool:
        """Re-read the retired set and metadata if the items table changed; True if it did."""
        if session is None:
            with self._sessions() as own:
                return self.refresh(own, force=force)
        with self._refresh_lock:
            fingerprint = store_items.catalogue_fingerprint(session)
            if not force and fingerprint == self._state.fingerprint:
                return False
            retired = frozenset(store_items.retired_items(session))
            metadata = store_items.item_metadata(session)
            with self._lock:
                self._state = _State(fingerprint, retired, metadata, self._state.generation + 1)
                self._masks.clear()
                self._new = (0.0, [])
        return True

    def allows(self, item_id: str, item_filter: ItemFilter = NO_FILTER) -> bool:
        """Whether ``item_id`` may appear in a list under ``item_filter`` (not retired, not
        excluded, metadata matching)."""
        state = self._state
        if item_id in state.retired or item_id in item_filter.exclude:
            return False
        return item_filter.matches(state.metadata.get(item_id)) if item_filter.where else True

    # -- masks over a model's items -----------------------------------------------------
    def base_mask(self, model: Any, where: tuple[tuple[str, str], ...] = ()) -> Any:
        """``(n_items,)`` bool: the model's items that are active and match ``where``;
        ``None`` when every item is allowed (the fast path). Cached per (model, where)."""
        state = self._state
        if not state.retired and not where:
            return None
        key = (state.generation, where)
        with self._lock:
            masks = self._masks.get(model)
            if masks is None:
                masks = self._masks[model] = OrderedDict()
            if key in masks:
                masks.move_to_end(key)
                return masks[key]
        item_filter = ItemFilter(where=where)
        allowed = [
            item not in state.retired
            and (not where or item_filter.matches(state.metadata.get(item)))
            for item in model.item_ids
        ]
        mask = torch.tensor(allowed, dtype=torch.bool, device=model.W.device)
        with self._lock:
            masks[key] = mask
            while len(masks) > self.MAX_MASKS:
                masks.popitem(last=False)
        return mask

    def mask(self, model: Any, item_filter: ItemFilter = NO_FILTER) -> Any:
        """:meth:`base_mask` with the filter's excluded ids removed too (a fresh tensor when
        there are any); ``None`` when every item is allowed."""
        base = self.base_mask(model, item_filter.where)
        if not item_filter.exclude:
            return base
        index = model._item_index
        columns = [index[i] for i in item_filter.exclude if i in index]
        if not columns:
            return base
        mask = (
            torch.ones(model.n_items, dtype=torch.bool, device=model.W.device)
            if base is None
            else base.clone()
        )
        mask[torch.tensor(columns, dtype=torch.long, device=mask.device)] = False
        return mask

    # -- lists --------------------------------------------------------------------------
    def newest(self, session: Session) -> list[tuple[str, int]]:
        """Every item as ``(item_id, created unix seconds)``, newest first (ties by id),
        cached for ``lists_ttl_s``."""
        expires, cached = self._new
        if time.monotonic() < expires:
            return cached
        generation = self._state.generation
        times = store_items.item_creation_times(session)
        ranked = sorted(times.items(), key=lambda pair: (-pair[1], pair[0]))
        with self._lock:
            if self._state.generation == generation:  # else a refresh meanwhile reset it
                self._new = (time.monotonic() + self.lists_ttl_s, ranked)
        return ranked


class Skipped(Mapping):
    """The items a fallback list (popular) must skip, as the container its ``exclude``
    argument expects: the user's rated items, retired items, excluded ids and items whose
    metadata do not match the filter. ``len`` counts what is known to be skipped, which sizes
    a deeper read when the cached head of the list runs out."""

    def __init__(
        self, catalogue: Catalogue | None, rated: Mapping[str, Any], item_filter: ItemFilter
    ) -> None:
        self._catalogue = catalogue
        self._rated = rated
        self._filter = item_filter
        extra = len(item_filter.exclude)
        if catalogue is not None:
            extra += len(catalogue.retired)
            if item_filter.where:
                extra += 1_000_000  # unknown: read the whole list when the head runs out
        self._len = len(rated) + extra

    def __contains__(self, item: object) -> bool:
        if item in self._rated:
            return True
        if self._catalogue is None:
            return item in self._filter.exclude
        return not self._catalogue.allows(str(item), self._filter)

    def __getitem__(self, item: str) -> Any:
        if item in self:
            return True
        raise KeyError(item)

    def __iter__(self):
        return iter(self._rated)

    def __len__(self) -> int:
        return self._len
