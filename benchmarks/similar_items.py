"""Similar items on MovieLens-100k: which of the two candidate methods answers
``GET /v1/items/{id}/similar`` (a benchmark, not a test: it prints a table).

Candidates, from one RBM trained on a per-user 75/25 split (RBMConfig defaults):

* ``cosine``: the cosine of the seed's and each item's engagement weight rows
  (``recommender.rbm.similar.top_similar``, what the route serves);
* ``fold-in``: recommendations for a profile that liked only the seed item
  (``similar.fold_in_similar``);
* ``popular``: the most-liked items of the training split (the seed left out), the reference.

Two measures:

1. **genre share**: over ``--seeds`` seed items drawn at random among items with at least
   ``--min-ratings`` training ratings, the share of each top 10 that shares at least one
   genre with the seed (MovieLens' "unknown" genre ignored). Target: cosine beats popular
   by >= 0.15 (issue 14).
2. **held-out hits**: for ``--users`` users, one of their training items at random as the seed;
   how many of the user's held-out items each top 10 contains (summed). "Similar" and "what
   this user will rate next" are different questions: this shows how different.

Also the time per answer (median microseconds, one torch thread) of cosine and fold-in.

    .venv/bin/python benchmarks/similar_items.py [--seeds 300] [--users 300] [--epochs 30]
        [--generated] [--json out.json]

Without MovieLens (``MOVIELENS_DIR`` or ../shared/data/movielens-100k) it says so and exits;
``--generated`` runs on generated data with planted groups instead (a group is the "genre").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recommender.data import (  # noqa: E402
    generate_ratings,
    read_item_metadata,
    read_ratings,
    split_per_user,
)
from recommender.rbm import RBMConfig, RBMRecommender, similar  # noqa: E402

MOVIELENS = Path(
    os.environ.get("MOVIELENS_DIR", REPO.parent / "shared" / "data" / "movielens-100k")
)
TOP = 10
TARGET_MARGIN = 0.15


def load(args: argparse.Namespace):
    """``(ratings, {item: set of genres}, source name)``."""
    if not args.generated:
        if not (MOVIELENS / "u.data").exists():
            print(f"MovieLens-100k not found at {MOVIELENS} (set MOVIELENS_DIR, or --generated)")
            sys.exit(0)
        ratings = read_ratings(MOVIELENS / "u.data")
        meta = read_item_metadata(MOVIELENS / "u.item")
        genres = {item: set(m.get("genres", [])) - {"unknown"} for item, m in meta.items()}
        return ratings, genres, "movielens-100k"
    n_users, n_items, n_groups, seed = 943, 1682, 18, 0
    ratings = generate_ratings(n_users=n_users, n_items=n_items, ratings_per_user=100,
                               n_groups=n_groups, seed=seed)
    rng = np.random.default_rng(seed)  # the item groups generate_interactions draws
    rng.permutation(n_items)
    rng.integers(0, n_groups, size=n_users)
    groups = rng.integers(0, n_groups, size=n_items)
    return ratings, {f"i{j}": {int(groups[j])} for j in range(n_items)}, "generated"


def genre_share(seed: str, items: list[str], genres: dict[str, set]) -> float:
    mine = genres.get(seed, set())
    return sum(bool(mine & genres.get(item, set())) for item in items) / max(len(items), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=300, help="seed items (genre share)")
    parser.add_argument("--users", type=int, default=300, help="users (held-out hits)")
    parser.add_argument("--min-ratings", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--generated", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ratings, genres, source = load(args)
    train, test = split_per_user(ratings, seed=42)
    model = RBMRecommender(RBMConfig(epochs=args.epochs, device="cpu", seed=0))
    started = time.perf_counter()
    model.fit(train, verbose=1)
    fit_s = time.perf_counter() - started

    likes: dict[str, int] = {}
    for item, value in zip(train.items.tolist(), train.values.tolist(), strict=True):
        if value >= model.config.like_threshold:
            likes[item] = likes.get(item, 0) + 1
    popular = sorted(likes, key=lambda i: (-likes[i], i))
    counts: dict[str, int] = {}
    for item in train.items.tolist():
        counts[item] = counts.get(item, 0) + 1

    rng = np.random.default_rng(0)
    candidates = sorted(i for i in model.item_ids
                        if counts.get(i, 0) >= args.min_ratings and genres.get(i))
    seeds = rng.choice(candidates, size=min(args.seeds, len(candidates)), replace=False).tolist()

    def cosine(seed: str) -> list[str]:
        pairs = similar.top_similar(model, model._item_index[seed], TOP)
        return [model.item_ids[j] for j, _ in pairs]

    def fold_in(seed: str) -> list[str]:
        return [item for item, _ in similar.fold_in_similar(model, seed, TOP)]

    def most_popular(seed: str) -> list[str]:
        return [item for item in popular if item != seed][:TOP]

    methods = {"cosine": cosine, "fold-in": fold_in, "popular": most_popular}
    shares = {name: [] for name in methods}
    micros = {name: [] for name in methods}
    for seed in seeds:
        for name, method in methods.items():
            t0 = time.perf_counter()
            items = method(seed)
            micros[name].append((time.perf_counter() - t0) * 1e6)
            shares[name].append(genre_share(seed, items, genres))

    train_by_user, test_by_user = train.by_user(), test.by_user()
    users = sorted(u for u in test_by_user if u in train_by_user)
    users = rng.choice(users, size=min(args.users, len(users)), replace=False).tolist()
    hits = {name: 0 for name in methods}
    for user in users:
        known = [i for i in sorted(train_by_user[user]) if i in model._item_index]
        seed = known[int(rng.integers(len(known)))]
        held_out = set(test_by_user[user])
        for name, method in methods.items():
            hits[name] += len(held_out & set(method(seed)))

    rows = []
    for name in methods:
        rows.append({
            "method": name,
            "genre_share": statistics.fmean(shares[name]),
            "held_out_hits": hits[name],
            "median_us": statistics.median(micros[name]),
        })
    margin = rows[0]["genre_share"] - rows[2]["genre_share"]
    print(f"\nsimilar items on {source}: {len(seeds)} seed items (>= {args.min_ratings} training "
          f"ratings), {len(users)} users; RBM defaults, {args.epochs} epochs, fit {fit_s:.0f} s; "
          f"{args.threads} torch thread(s)\n")
    print(f"| method | genre share of top {TOP} | held-out hits (top {TOP}, one seed each) "
          "| median us per answer |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['method']} | {row['genre_share']:.3f} | {row['held_out_hits']} "
              f"| {row['median_us']:.0f} |")
    verdict = "meets" if margin >= TARGET_MARGIN else "MISSES"
    print(f"\ncosine - popular genre share: {margin:+.3f} ({verdict} the >= +{TARGET_MARGIN} "
          f"target); fold-in - popular: {rows[1]['genre_share'] - rows[2]['genre_share']:+.3f}")
    if args.json:
        args.json.write_text(json.dumps({"source": source, "seeds": len(seeds),
                                         "users": len(users), "epochs": args.epochs,
                                         "fit_seconds": fit_s, "rows": rows,
                                         "margin": margin}, indent=2))


if __name__ == "__main__":
    main()
