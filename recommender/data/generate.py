"""Generated rating sets with planted structure, for tests, demos and benchmarks.

Users belong to one of ``n_groups`` taste groups. Each group has its own favourite items; a
user rates mostly items of their group (and some globally popular ones), and rates their
group's items high and the others low. A popularity list therefore gets only the global head
right, while a model that learns the groups can do much better: the test that the RBM beats
the popularity baseline relies on this.
"""

from __future__ import annotations

import numpy as np

from .ratings import Ratings


def generate_interactions(n_users: int, n_items: int, ratings_per_user: float = 40.0, *,
                          n_groups: int = 8, group_share: float = 0.7, zipf: float = 1.0,
                          activity: str = "poisson", activity_sigma: float = 1.0,
                          min_per_user: int = 5,
                          seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer ``(user_index, item_index, rating)`` arrays; one rating per (user, item) pair.

    ``group_share`` of a user's ratings fall on their group's items, the rest follow a Zipf
    popularity with exponent ``zipf``. Ratings are 1-5: 4-5 mostly for group items, 1-3 mostly
    otherwise. Vectorised, so the Netflix-shaped benchmark data (100M ratings) is feasible.

    ``activity`` is how many ratings each user draws: ``"poisson"`` around
    ``ratings_per_user`` (the small sets the tests pin), or ``"lognormal"`` with mean
    ``ratings_per_user`` and log-scale spread ``activity_sigma`` (real catalogues: most users
    rate a few items, a few rate thousands). Either way at least ``min_per_user`` and at most
    half the catalogue. Draws of the same item by one user collapse into one rating, so the
    total comes out below ``n_users * ratings_per_user`` (see :func:`generate_catalogue`).
    """
    if activity not in ("poisson", "lognormal"):
        raise ValueError(f"activity must be 'poisson' or 'lognormal'. Received: "
                         f"activity={activity!r}")
    if n_users < 1 or n_items < 2:
        raise ValueError(f"need n_users >= 1 and n_items >= 2. Received: n_users={n_users}, "
                         f"n_items={n_items}")
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** zipf
    popularity = popularity[rng.permutation(n_items)]
    popularity /= popularity.sum()
    cdf_pop = np.cumsum(popularity)

    user_group = rng.integers(0, n_groups, size=n_users)
    item_group = rng.integers(0, n_groups, size=n_items)
    # Items of each group, ordered by popularity so groups have their own head too.
    group_items = [np.flatnonzero(item_group == g) for g in range(n_groups)]
    group_cdfs = []
    for items in group_items:
        p = popularity[items] ** 0.5
        group_cdfs.append(np.cumsum(p / p.sum()))

    if activity == "poisson":
        counts = np.maximum(min_per_user, rng.poisson(ratings_per_user, size=n_users))
    else:
        # mu so that the log-normal's mean exp(mu + sigma^2 / 2) is ratings_per_user.
        mu = np.log(ratings_per_user) - activity_sigma**2 / 2
        counts = np.maximum(min_per_user,
                            np.rint(rng.lognormal(mu, activity_sigma, size=n_users)))
        counts = counts.astype(np.int64)
    counts = np.minimum(counts, n_items // 2)
    total = int(counts.sum())
    user_idx = np.repeat(np.arange(n_users), counts)
    from_group = rng.random(total) < group_share
    item_idx = np.empty(total, dtype=np.int64)
    # Popular draws.
    n_pop = int((~from_group).sum())
    item_idx[~from_group] = np.minimum(np.searchsorted(cdf_pop, rng.random(n_pop)),
                                       n_items - 1)
    # Group draws, group by group.
    groups_of_rows = user_group[user_idx]
    for g in range(n_groups):
        rows = np.flatnonzero(from_group & (groups_of_rows == g))
        if len(rows) == 0 or len(group_items[g]) == 0:
            item_idx[rows] = np.minimum(np.searchsorted(cdf_pop, rng.random(len(rows))),
                                        n_items - 1)
            continue
        pick = np.minimum(np.searchsorted(group_cdfs[g], rng.random(len(rows))),
                          len(group_items[g]) - 1)
        item_idx[rows] = group_items[g][pick]

    # One rating per pair.
    key = user_idx.astype(np.int64) * n_items + item_idx
    key.sort()  # sort + neighbour compare: np.unique's hash path is ~10x slower at 10M
    key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    user_idx = key // n_items
    item_idx = key % n_items
    in_group = user_group[user_idx] == item_group[item_idx]
    high = rng.choice([4, 5], size=len(key), p=[0.5, 0.5])
    low = rng.choice([1, 2, 3], size=len(key), p=[0.3, 0.4, 0.3])
    noise = rng.random(len(key)) < 0.1
    ratings = np.where(in_group ^ noise, high, low).astype(np.float32)
    return user_idx, item_idx, ratings


def generate_ratings(n_users: int = 300, n_items: int = 200, ratings_per_user: float = 30.0,
                     *, n_groups: int = 6, seed: int = 0) -> Ratings:
    """A small planted-structure data set with string ids ``u<n>`` / ``i<n>``."""
    u, i, r = generate_interactions(n_users, n_items, ratings_per_user, n_groups=n_groups,
                                    seed=seed)
    rng = np.random.default_rng(seed + 1)
    stamps = 1_600_000_000 + rng.integers(0, 10_000_000, size=len(r))
    users = np.array([f"u{x}" for x in u], dtype=object)
    items = np.array([f"i{x}" for x in i], dtype=object)
    return Ratings(users, items, r.astype(np.float32), stamps.astype(np.int64))


def generate_catalogue(n_users: int, n_items: int, n_ratings: int, *, zipf: float = 1.0,
                       activity_sigma: float = 1.0, min_per_user: int = 20, n_groups: int = 16,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A catalogue-shaped set of exactly ``n_ratings`` ratings (when the shape allows it):
    Zipf item popularity, log-normal user activity (at least ``min_per_user`` each, as
    MovieLens keeps), planted taste groups. Returns ``(user_index, item_index, rating,
    timestamp)`` arrays, sorted by user then item, one rating per pair.

    The MovieLens-10M shape (69,878 x 10,677, 10M) takes a few seconds: draws collapse on
    popular items, so it draws a little more than asked and drops a random surplus.
    """
    if n_ratings < 1 or n_ratings > n_users * (n_items // 2):
        raise ValueError(f"n_ratings must be in [1, n_users * (n_items // 2)]. Received: "
                         f"n_ratings={n_ratings} for {n_users} users x {n_items} items")
    min_per_user = min(min_per_user, max(1, n_ratings // n_users))
    oversample = 1.25  # draws of one item by one user collapse
    for _attempt in range(10):
        u, i, r = generate_interactions(
            n_users, n_items, oversample * n_ratings / n_users, n_groups=n_groups, zipf=zipf,
            activity="lognormal", activity_sigma=activity_sigma, min_per_user=min_per_user,
            seed=seed)
        if len(r) >= n_ratings:
            break
        oversample *= 1.05 * n_ratings / len(r)
    rng = np.random.default_rng(seed + 1)
    if len(r) > n_ratings:
        keep = np.sort(rng.choice(len(r), size=n_ratings, replace=False))
        u, i, r = u[keep], i[keep], r[keep]
    stamps = 1_000_000_000 + rng.integers(0, 300_000_000, size=len(r), dtype=np.int64)
    return u, i, r, stamps
