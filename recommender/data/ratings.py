"""The ratings table as the engine sees it: four aligned numpy arrays.

Ids are strings everywhere (the service accepts any 1-128 character id), ratings float32,
timestamps int64 unix seconds.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


def _as_id_array(values: Iterable) -> np.ndarray:
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    return arr.astype(str).astype(object)


@dataclass(frozen=True)
class Ratings:
    """Aligned arrays of (user, item, rating, timestamp); one row per rating."""

    users: np.ndarray  # (n,) object array of str
    items: np.ndarray  # (n,) object array of str
    values: np.ndarray  # (n,) float32
    timestamps: np.ndarray  # (n,) int64, unix seconds

    def __post_init__(self) -> None:
        n = len(self.users)
        for name in ("items", "values", "timestamps"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"Ratings arrays must have the same length. Received: users={n}, "
                    f"{name}={len(getattr(self, name))}"
                )

    @classmethod
    def from_arrays(cls, users, items, values, timestamps=None) -> Ratings:
        users = _as_id_array(users)
        items = _as_id_array(items)
        values = np.asarray(values, dtype=np.float32)
        if timestamps is None:
            timestamps = np.zeros(len(values), dtype=np.int64)
        timestamps = np.asarray(timestamps, dtype=np.int64)
        return cls(users, items, values, timestamps)

    @classmethod
    def from_records(cls, records: Iterable[tuple]) -> Ratings:
        """From ``(user, item, rating[, timestamp])`` tuples."""
        users, items, values, stamps = [], [], [], []
        for row in records:
            users.append(row[0])
            items.append(row[1])
            values.append(row[2])
            stamps.append(row[3] if len(row) > 3 and row[3] is not None else 0)
        return cls.from_arrays(users, items, values, stamps)

    def __len__(self) -> int:
        return len(self.values)

    def subset(self, mask_or_index: np.ndarray) -> Ratings:
        return Ratings(self.users[mask_or_index], self.items[mask_or_index],
                       self.values[mask_or_index], self.timestamps[mask_or_index])

    @property
    def n_users(self) -> int:
        return len(np.unique(self.users))

    @property
    def n_items(self) -> int:
        return len(np.unique(self.items))

    def by_user(self) -> dict[str, dict[str, float]]:
        """``{user: {item: rating}}``: the shape ``RBMRecommender.recommend`` takes."""
        out: dict[str, dict[str, float]] = {}
        for u, i, r in zip(self.users, self.items, self.values, strict=True):
            out.setdefault(u, {})[i] = float(r)
        return out

    def fingerprint(self) -> str:
        """A short stable hash of the content (order-independent), stored with a model."""
        order = np.lexsort((self.items.astype(str), self.users.astype(str)))
        h = hashlib.sha256()
        for arr in (self.users[order], self.items[order]):
            h.update("\x1f".join(arr.tolist()).encode())
        h.update(np.ascontiguousarray(self.values[order]).tobytes())
        return h.hexdigest()[:16]


def validate_ratings(ratings: Ratings, *, rating_min: float = 1.0,
                     rating_max: float = 5.0) -> None:
    """Raise ``ValueError`` naming the first bad row: NaN/inf or out-of-scale rating, empty id."""
    if len(ratings) == 0:
        raise ValueError("ratings is empty: at least one rating is needed. Received: 0 rows")
    bad = ~np.isfinite(ratings.values)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"rating must be a finite number. Received: rating={float(ratings.values[i])!r} "
            f"(user={ratings.users[i]!r}, item={ratings.items[i]!r}, row {i})"
        )
    out = (ratings.values < rating_min) | (ratings.values > rating_max)
    if out.any():
        i = int(np.argmax(out))
        raise ValueError(
            f"rating must be in [{rating_min:g}, {rating_max:g}]. Received: "
            f"rating={float(ratings.values[i]):g} (user={ratings.users[i]!r}, "
            f"item={ratings.items[i]!r}, row {i})"
        )
    for name, arr in (("user", ratings.users), ("item", ratings.items)):
        empty = np.array([len(x) == 0 for x in arr])
        if empty.any():
            i = int(np.argmax(empty))
            raise ValueError(f"{name} id must be a non-empty string. Received: {name}='' "
                             f"(row {i})")


def deduplicate(ratings: Ratings) -> Ratings:
    """Keep one row per (user, item): the latest by timestamp (the later row on ties)."""
    if len(ratings) == 0:
        return ratings
    # Stable sort by timestamp, then keep the last occurrence of each pair.
    order = np.argsort(ratings.timestamps, kind="stable")
    keys = np.char.add(np.char.add(ratings.users[order].astype(str), "\x1f"),
                       ratings.items[order].astype(str))
    _, last_rev = np.unique(keys[::-1], return_index=True)
    keep = order[len(order) - 1 - last_rev]
    keep.sort()
    if len(keep) == len(ratings):
        return ratings
    return ratings.subset(keep)


def split_per_user(ratings: Ratings, test_fraction: float = 0.25,
                   seed: int = 42) -> tuple[Ratings, Ratings]:
    """Per user, a random ``1 - test_fraction`` / ``test_fraction`` split of their ratings.

    The protocol of ``../shared/data/README.md``: seeded; a user with a single rating keeps it
    in training. Each user's held-out count is ``round(n * test_fraction)``.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(
            f"test_fraction must be in (0, 1). Received: test_fraction={test_fraction!r}"
        )
    rng = np.random.default_rng(seed)
    order = np.argsort(ratings.users, kind="stable")
    users_sorted = ratings.users[order]
    boundaries = np.flatnonzero(users_sorted[1:] != users_sorted[:-1]) + 1
    test_mask = np.zeros(len(ratings), dtype=bool)
    for group in np.split(order, boundaries):
        n_test = int(math.floor(len(group) * test_fraction + 0.5))
        if len(group) < 2 or n_test == 0:
            continue
        chosen = rng.choice(group, size=n_test, replace=False)
        test_mask[chosen] = True
    return ratings.subset(~test_mask), ratings.subset(test_mask)
