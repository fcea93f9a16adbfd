"""The ratings table as the engine sees it: columns, not objects.

A :class:`Ratings` holds integer codes for users and items plus the sorted id categories they
index (the layout of a pandas categorical), and numpy ``values`` / ``timestamps``. Ten million
ratings are four 4-8 byte columns (~200 MB) and two small arrays of ids, never ten million
Python objects. De-duplication, splits, validation and the fingerprint work on the codes.

Ids are strings everywhere (the service accepts any 1-128 character id), ratings float32,
timestamps int64 unix seconds. The categories are sorted (Python string order, which is
Unicode code point order and also UTF-8 byte order), so sorting codes sorts ids, and the
categories may hold ids no row uses any more (after :meth:`Ratings.subset`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

CODE_DTYPE = np.int32  # 2**31 distinct users or items is far beyond any catalogue here


def _as_str_array(values: Iterable) -> np.ndarray:
    """An object array of ``str`` (ids given as ints or numpy strings become their text)."""
    import pandas as pd

    if not isinstance(values, np.ndarray):
        values = np.asarray(list(values) if not hasattr(values, "__len__") else values)
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) in (
        "string", "empty"
    ):
        return values
    return values.astype(str).astype(object)


def factorize_ids(ids: Iterable) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, categories)``: ``categories`` sorted unique ids, ``categories[codes] == ids``."""
    import pandas as pd

    arr = _as_str_array(ids)
    codes, uniques = pd.factorize(arr, sort=True)
    return codes.astype(CODE_DTYPE, copy=False), np.asarray(uniques, dtype=object)


def sort_categories(codes: np.ndarray, categories: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same column with its categories sorted (and checked unique): codes remapped."""
    categories = _as_str_array(categories)
    order = np.argsort(categories, kind="stable")
    sorted_ids = categories[order]
    if len(sorted_ids) > 1 and (sorted_ids[1:] == sorted_ids[:-1]).any():
        dup = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]][0]
        raise ValueError(f"id categories must be unique. Received a repeated id: {dup!r}")
    if (order == np.arange(len(order))).all():
        return np.asarray(codes, dtype=CODE_DTYPE), sorted_ids
    rank = np.empty(len(order), dtype=CODE_DTYPE)
    rank[order] = np.arange(len(order), dtype=CODE_DTYPE)
    return rank[codes], sorted_ids


def _used(codes: np.ndarray, n_categories: int) -> np.ndarray:
    """Sorted distinct codes (a counting pass: codes are small integers)."""
    return np.flatnonzero(np.bincount(codes, minlength=n_categories))


class Ratings:
    """Aligned columns of (user, item, rating, timestamp); one row per rating.

    ``Ratings(users, items, values, timestamps)`` builds one from id arrays (small data, tests);
    :meth:`from_codes` from codes and categories (the columnar path: readers, store snapshots).
    ``users`` / ``items`` give the ids per row as object arrays of references into the
    categories, for code that wants them; the engine's own paths use the codes.
    """

    __slots__ = ("user_codes", "item_codes", "user_ids", "item_ids", "values", "timestamps")
    # Declared for the type checker (annotations only: no class attribute clashes with a slot);
    # set once in ``_set``, never again (``__setattr__`` refuses).
    user_codes: np.ndarray  # (n,) int32 index into user_ids
    item_codes: np.ndarray  # (n,) int32 index into item_ids
    user_ids: np.ndarray  # (n_user_categories,) sorted str, object dtype
    item_ids: np.ndarray  # (n_item_categories,) sorted str, object dtype
    values: np.ndarray  # (n,) float32
    timestamps: np.ndarray  # (n,) int64 unix seconds

    def __init__(self, users: Iterable, items: Iterable, values: Iterable,
                 timestamps: Iterable | None = None) -> None:
        user_codes, user_ids = factorize_ids(users)
        item_codes, item_ids = factorize_ids(items)
        self._set(user_codes, item_codes, user_ids, item_ids, values, timestamps)

    def _set(self, user_codes: np.ndarray, item_codes: np.ndarray, user_ids: np.ndarray,
             item_ids: np.ndarray, values: Iterable, timestamps: Iterable | None) -> None:
        values = np.asarray(values, dtype=np.float32)
        if timestamps is None:
            timestamps = np.zeros(len(values), dtype=np.int64)
        columns = {
            "user_codes": np.asarray(user_codes, dtype=CODE_DTYPE),
            "item_codes": np.asarray(item_codes, dtype=CODE_DTYPE),
            "values": values,
            "timestamps": np.asarray(timestamps, dtype=np.int64),
        }
        n = len(columns["user_codes"])
        for name, column in columns.items():
            if len(column) != n:
                raise ValueError(
                    f"Ratings columns must have the same length. Received: users={n}, "
                    f"{name}={len(column)}"
                )
        for name, value in columns.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "user_ids", user_ids)  # (n_user_categories,) sorted str
        object.__setattr__(self, "item_ids", item_ids)  # (n_item_categories,) sorted str

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Ratings is immutable")

    @classmethod
    def from_codes(cls, user_codes: np.ndarray, item_codes: np.ndarray, user_ids: Iterable,
                   item_ids: Iterable, values: np.ndarray,
                   timestamps: np.ndarray | None = None) -> Ratings:
        """From integer codes into id categories (sorted here if they are not already)."""
        user_codes, user_ids = sort_categories(np.asarray(user_codes), np.asarray(user_ids,
                                                                                  dtype=object))
        item_codes, item_ids = sort_categories(np.asarray(item_codes), np.asarray(item_ids,
                                                                                  dtype=object))
        out = cls.__new__(cls)
        out._set(user_codes, item_codes, user_ids, item_ids, values, timestamps)
        return out

    @classmethod
    def from_arrays(cls, users, items, values, timestamps=None) -> Ratings:
        return cls(users, items, values, timestamps)

    @classmethod
    def from_frame(cls, frame, *, user: str = "user", item: str = "item", rating: str = "rating",
                   timestamp: str | None = "timestamp") -> Ratings:
        """From a pandas DataFrame; categorical id columns are taken as they are (no copy of
        the ids per row), other id columns are factorized."""
        import pandas as pd

        codes, categories = [], []
        for name in (user, item):
            column = frame[name]
            if not isinstance(column.dtype, pd.CategoricalDtype):
                column = column.astype(str).astype("category")
            codes.append(column.cat.codes.to_numpy())
            categories.append(np.asarray(column.cat.categories.astype(str), dtype=object))
        stamps = None
        if timestamp is not None and timestamp in frame:
            stamps = frame[timestamp].to_numpy(dtype=np.int64)
        return cls.from_codes(codes[0], codes[1], categories[0], categories[1],
                              frame[rating].to_numpy(dtype=np.float32), stamps)

    @classmethod
    def from_records(cls, records: Iterable[tuple]) -> Ratings:
        """From ``(user, item, rating[, timestamp])`` tuples (small data: tests, examples)."""
        users, items, values, stamps = [], [], [], []
        for row in records:
            users.append(row[0])
            items.append(row[1])
            values.append(row[2])
            stamps.append(row[3] if len(row) > 3 and row[3] is not None else 0)
        return cls(users, items, values, stamps)

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return (f"Ratings({len(self)} ratings, {self.n_users} users, {self.n_items} items)")

    # -- ids per row (compatibility views; the columnar paths use the codes) -------------------
    @property
    def users(self) -> np.ndarray:
        """``(n,)`` object array: each row's user id (references into ``user_ids``)."""
        return self.user_ids[self.user_codes]

    @property
    def items(self) -> np.ndarray:
        """``(n,)`` object array: each row's item id (references into ``item_ids``)."""
        return self.item_ids[self.item_codes]

    def subset(self, mask_or_index: np.ndarray) -> Ratings:
        """The rows selected by a boolean mask or an index array; categories are kept."""
        out = Ratings.__new__(Ratings)
        out._set(self.user_codes[mask_or_index], self.item_codes[mask_or_index], self.user_ids,
                 self.item_ids, self.values[mask_or_index], self.timestamps[mask_or_index])
        return out

    def compact(self) -> Ratings:
        """The same rows with only the ids some row uses left in the categories."""
        user_used = _used(self.user_codes, len(self.user_ids))
        item_used = _used(self.item_codes, len(self.item_ids))
        if len(user_used) == len(self.user_ids) and len(item_used) == len(self.item_ids):
            return self
        out = Ratings.__new__(Ratings)
        out._set(np.searchsorted(user_used, self.user_codes),
                 np.searchsorted(item_used, self.item_codes),
                 self.user_ids[user_used], self.item_ids[item_used], self.values, self.timestamps)
        return out

    @property
    def n_users(self) -> int:
        return int(np.count_nonzero(np.bincount(self.user_codes, minlength=1)))

    @property
    def n_items(self) -> int:
        return int(np.count_nonzero(np.bincount(self.item_codes, minlength=1)))

    def used_user_ids(self) -> np.ndarray:
        """The distinct user ids of the rows, sorted."""
        return self.user_ids[_used(self.user_codes, len(self.user_ids))]

    def used_item_ids(self) -> np.ndarray:
        """The distinct item ids of the rows, sorted."""
        return self.item_ids[_used(self.item_codes, len(self.item_ids))]

    def pair_keys(self) -> np.ndarray:
        """``(n,)`` int64: one key per (user, item), ordered like (user id, item id)."""
        return self.user_codes.astype(np.int64) * max(len(self.item_ids), 1) + self.item_codes

    def by_user(self) -> dict[str, dict[str, float]]:
        """``{user: {item: rating}}``: the shape ``RBMRecommender.recommend`` takes."""
        out: dict[str, dict[str, float]] = {}
        for u, i, r in zip(self.users, self.items, self.values.tolist(), strict=True):
            out.setdefault(u, {})[i] = r
        return out

    def fingerprint(self) -> str:
        """A short stable hash of the content (order-independent), stored with a model.

        Hashes the distinct ids and, in (user, item) order, each row's rank among them and its
        rating: the same ratings give the same hash whatever the row order or the categories.
        """
        compact = self.compact()
        order = np.lexsort((compact.item_codes, compact.user_codes))
        h = hashlib.sha256()
        for ids in (compact.user_ids, compact.item_ids):
            h.update("\x1f".join(ids.tolist()).encode())
            h.update(b"\x1e")
        h.update(np.ascontiguousarray(compact.user_codes[order], dtype="<i4").tobytes())
        h.update(np.ascontiguousarray(compact.item_codes[order], dtype="<i4").tobytes())
        h.update(np.ascontiguousarray(compact.values[order], dtype="<f4").tobytes())
        return h.hexdigest()[:16]


def first_bad_row(ratings: Ratings, *, rating_min: float = 1.0,
                  rating_max: float = 5.0) -> tuple[int, str] | None:
    """``(row, message)`` for the first row that breaks the rules of :func:`validate_ratings`
    (the earliest row, whichever rule it breaks), or ``None`` when every row is fine."""
    values = ratings.values
    not_finite = ~np.isfinite(values)
    with np.errstate(invalid="ignore"):
        out_of_scale = ~not_finite & ((values < rating_min) | (values > rating_max))
    empty_user = np.array([len(x) == 0 for x in ratings.user_ids], dtype=np.bool_)
    empty_item = np.array([len(x) == 0 for x in ratings.item_ids], dtype=np.bool_)
    bad = not_finite | out_of_scale
    if empty_user.any():
        bad |= empty_user[ratings.user_codes]
    if empty_item.any():
        bad |= empty_item[ratings.item_codes]
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    user, item = ratings.user_ids[ratings.user_codes[i]], ratings.item_ids[ratings.item_codes[i]]
    if not_finite[i]:
        message = (f"rating must be a finite number. Received: rating={float(values[i])!r} "
                   f"(user={user!r}, item={item!r})")
    elif out_of_scale[i]:
        message = (f"rating must be in [{rating_min:g}, {rating_max:g}]. Received: "
                   f"rating={float(values[i]):g} (user={user!r}, item={item!r})")
    elif user == "":
        message = "user id must be a non-empty string. Received: user=''"
    else:
        message = "item id must be a non-empty string. Received: item=''"
    return i, message


def validate_ratings(ratings: Ratings, *, rating_min: float = 1.0,
                     rating_max: float = 5.0) -> None:
    """Raise ``ValueError`` naming the first bad row: NaN/inf or out-of-scale rating, empty id."""
    if len(ratings) == 0:
        raise ValueError("ratings is empty: at least one rating is needed. Received: 0 rows")
    found = first_bad_row(ratings, rating_min=rating_min, rating_max=rating_max)
    if found is not None:
        row, message = found
        raise ValueError(f"{message} (row {row})")


def latest_per_pair(ratings: Ratings) -> np.ndarray | None:
    """Row indices (ascending) that keep one row per (user, item), the latest by timestamp
    (the later row on ties); ``None`` when there are no duplicates."""
    keys = ratings.pair_keys()
    if len(keys) < 2 or (keys[1:] > keys[:-1]).all():  # sorted and unique: nothing to do
        return None
    # Sort by (key, timestamp); lexsort is stable, so equal timestamps keep row order and the
    # last row of each key's run is the one to keep.
    order = np.lexsort((ratings.timestamps, keys))
    sorted_keys = keys[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
    if last.all():
        return None
    keep = order[last]
    keep.sort()
    return keep


def deduplicate(ratings: Ratings) -> Ratings:
    """Keep one row per (user, item): the latest by timestamp (the later row on ties)."""
    keep = latest_per_pair(ratings)
    return ratings if keep is None else ratings.subset(keep)


def split_per_user(ratings: Ratings, test_fraction: float = 0.25,
                   seed: int = 42) -> tuple[Ratings, Ratings]:
    """Per user, a random ``1 - test_fraction`` / ``test_fraction`` split of their ratings.

    The protocol of ``../shared/data/README.md``: seeded; a user with a single rating keeps it
    in training. Each user's held-out count is ``round(n * test_fraction)``. Users are taken
    in id order and each user's rows in row order, so the draws (one ``rng.choice`` per user,
    a loop over users, never over ratings) are those of the string-array version before it.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(
            f"test_fraction must be in (0, 1). Received: test_fraction={test_fraction!r}"
        )
    rng = np.random.default_rng(seed)
    order = np.argsort(ratings.user_codes, kind="stable")  # (n,) rows grouped by user id
    counts = np.bincount(ratings.user_codes, minlength=len(ratings.user_ids))
    counts = counts[counts > 0]  # rows per user, in user id order
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    n_test = np.floor(counts * test_fraction + 0.5).astype(np.int64)
    test_mask = np.zeros(len(ratings), dtype=bool)
    for start, size, k in zip(starts.tolist(), counts.tolist(), n_test.tolist(), strict=True):
        if size < 2 or k == 0:
            continue
        test_mask[rng.choice(order[start:start + size], size=k, replace=False)] = True
    return ratings.subset(~test_mask), ratings.subset(test_mask)
