"""The evaluation protocol of ``../shared/data/README.md``, for the RBM and the baselines.

Per user, a seeded random 75/25 split; models see the 75 %; top-k lists exclude the user's
training items; every held-out item is relevant whatever its rating. Like/dislike accuracy is
measured on the held-out ratings of items the model knows (rating >= threshold is "liked").
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data.ratings import Ratings, deduplicate, split_per_user
from ..rbm.config import RBMConfig
from ..rbm.encoding import N_STATES
from ..rbm.model import RBMRecommender
from .metrics import like_accuracy, ranking_metrics

METRICS = ("precision", "recall", "ndcg", "map")


def _relevance(model: RBMRecommender, train: Ratings, test: Ratings):
    """CSR of the training and test data over the model's items, rows aligned by user."""
    users = np.union1d(train.used_user_ids(), test.used_user_ids())  # sorted ids
    index = {u: i for i, u in enumerate(users.tolist())}
    return model.encode(train, index)[0], model.encode(test, index)[0]


@torch.no_grad()
def evaluate_model(model: RBMRecommender, train: Ratings, test: Ratings, k: int = 10,
                   batch_size: int = 512) -> dict[str, float]:
    """Ranking metrics at ``k``, like/dislike accuracy and catalog coverage of the RBM."""
    train_sparse, test_sparse = _relevance(model, train, test)
    sums = dict.fromkeys(METRICS, 0.0)
    n_users = 0
    recommended = torch.zeros(model.n_items, dtype=torch.bool, device=model.device)
    p_like_all, liked_all = [], []
    rows_all = torch.nonzero(test_sparse.indptr[1:] > test_sparse.indptr[:-1]).flatten()
    for start in range(0, rows_all.numel(), batch_size):
        rows = rows_all[start:start + batch_size]
        x = train_sparse.dense(rows)
        xt = test_sparse.dense(rows).view(rows.numel(), -1, N_STATES)
        scores, probs = model.scores_from_dense(x)  # (users, items), (users, items, 2)
        top = scores.topk(min(k, model.n_items), dim=1).indices
        relevant = xt.sum(dim=-1) > 0
        m = ranking_metrics(top, relevant)
        for key in METRICS:
            sums[key] += float(m[key].sum())
        n_users += rows.numel()
        recommended[top.flatten()] = True
        p_like = probs[..., 1] / probs.sum(dim=-1)
        p_like_all.append(p_like[relevant])
        liked_all.append(xt[..., 1][relevant])
    out = {key: sums[key] / max(n_users, 1) for key in METRICS}
    out["like_accuracy"] = like_accuracy(torch.cat(p_like_all), torch.cat(liked_all))
    out["coverage"] = float(recommended.float().mean())
    out["users"] = n_users
    return out


def evaluate_popularity(train: Ratings, test: Ratings, k: int = 10,
                        like_threshold: float = 4.0) -> dict[str, float]:
    """The most-popular baseline: items ranked by training rating count, same protocol.

    Its like/dislike prediction is the item's training like-rate (>= 0.5 means "liked").
    """
    items = pd.Index(np.union1d(train.used_item_ids(), test.used_item_ids()))  # sorted ids
    users = pd.Index(test.used_user_ids())
    n_items = len(items)
    # Ids are looked up once per category, then mapped to the rows through their codes.
    tr_items = items.get_indexer(train.item_ids)[train.item_codes]
    counts = np.bincount(tr_items, minlength=n_items).astype(np.float64)
    likes = np.bincount(tr_items, weights=(train.values >= like_threshold), minlength=n_items)
    like_rate = np.where(counts > 0, likes / np.maximum(counts, 1), 0.5)
    seen = torch.zeros(len(users), n_items, dtype=torch.bool)
    relevant = torch.zeros(len(users), n_items, dtype=torch.bool)
    tr_rows = users.get_indexer(train.user_ids)[train.user_codes]  # -1: no test ratings
    known = tr_rows >= 0
    seen[torch.from_numpy(tr_rows[known]), torch.from_numpy(tr_items[known])] = True
    te_rows = torch.from_numpy(users.get_indexer(test.user_ids)[test.user_codes])
    te_items = torch.from_numpy(items.get_indexer(test.item_ids)[test.item_codes])
    relevant[te_rows, te_items] = True
    scores = torch.from_numpy(counts).expand(len(users), -1).clone()
    scores = scores.masked_fill(seen, float("-inf"))
    top = scores.topk(min(k, n_items), dim=1).indices
    m = ranking_metrics(top, relevant)
    out = {key: float(m[key].mean()) for key in METRICS}
    p_like = torch.from_numpy(like_rate)[te_items]
    out["like_accuracy"] = like_accuracy(p_like, torch.from_numpy(test.values >= like_threshold))
    out["coverage"] = float(len(torch.unique(top)) / n_items)
    out["users"] = len(users)
    return out


def evaluate_cold_start(model: RBMRecommender, train: Ratings, test: Ratings, *,
                        known: tuple[int, ...] = (1, 3, 5, 10, 20), k: int = 10,
                        seed: int = 0) -> list[dict[str, float]]:
    """How the RBM ranks for users who have rated only a few items yet (new users of the
    service, folded in without retraining), beside the popularity list.

    For each ``n`` in ``known``, every user's fold-in sees ``n`` of their training ratings,
    drawn at random (seed ``seed``; all of them when they have fewer); both lists exclude
    those ``n`` items and are scored against the user's held-out items as in
    :func:`evaluate_model`. Popularity counts every training rating. Returns one row per
    ``n``: ``{"known", "precision", "ndcg", "popularity_precision", "popularity_ndcg"}``.
    """
    by_user: dict[str, dict[str, float]] = {}
    for user, item, value in zip(train.users, train.items, train.values, strict=True):
        by_user.setdefault(user, {})[item] = float(value)
    relevant_items: dict[str, set[str]] = {}
    for user, item in zip(test.users, test.items, strict=True):
        relevant_items.setdefault(user, set()).add(item)
    users = [u for u in sorted(relevant_items) if u in by_user]
    index = model._item_index
    relevant = torch.zeros(len(users), model.n_items, dtype=torch.bool)
    for row, user in enumerate(users):
        columns = [index[i] for i in relevant_items[user] if i in index]
        relevant[row, columns] = True
    counts = torch.zeros(model.n_items, dtype=torch.float64)
    known_items = torch.tensor([index[i] for i in train.items if i in index], dtype=torch.int64)
    counts.index_add_(0, known_items, torch.ones(len(known_items), dtype=torch.float64))
    rng = np.random.default_rng(seed)
    rows = []
    for n in known:
        folded = []
        for user in users:
            items = list(by_user[user])
            keep = rng.choice(len(items), size=min(n, len(items)), replace=False)
            folded.append({items[j]: by_user[user][items[j]] for j in keep})
        scores = model.score_items(folded)  # -inf on the n known items
        rbm = ranking_metrics(scores.topk(min(k, model.n_items), dim=1).indices, relevant)
        pop_scores = counts.expand(len(users), -1).masked_fill(scores == float("-inf"),
                                                                float("-inf"))
        pop = ranking_metrics(pop_scores.topk(min(k, model.n_items), dim=1).indices, relevant)
        rows.append({"known": n,
                     "precision": float(rbm["precision"].mean()),
                     "ndcg": float(rbm["ndcg"].mean()),
                     "popularity_precision": float(pop["precision"].mean()),
                     "popularity_ndcg": float(pop["ndcg"].mean())})
    return rows


def run_protocol(ratings: Ratings, *, k: int = 10, test_fraction: float = 0.25, seed: int = 42,
                 config: Any = None, verbose: int = 1,
                 cold_start: tuple[int, ...] = ()) -> dict[str, Any]:
    """Split, train the RBM on the training part, evaluate it and the popularity baseline
    (and, for each ``n`` in ``cold_start``, users folded in from ``n`` ratings only)."""
    config = config or RBMConfig()
    ratings = deduplicate(ratings)
    train, test = split_per_user(ratings, test_fraction=test_fraction, seed=seed)
    model = RBMRecommender(config)
    started = time.perf_counter()
    model.fit(train, verbose=verbose)
    seconds = time.perf_counter() - started
    rbm = evaluate_model(model, train, test, k=k)
    rbm["train_seconds"] = seconds
    pop = evaluate_popularity(train, test, k=k, like_threshold=config.like_threshold)
    pop["train_seconds"] = 0.0
    extra = ({"cold_start": evaluate_cold_start(model, train, test, known=cold_start, k=k)}
             if cold_start else {})
    return {
        "k": k,
        "data": {"ratings": len(ratings), "users": ratings.n_users, "items": ratings.n_items,
                 "train": len(train), "test": len(test), "seed": seed},
        "config": config.to_dict(),
        "models": {"rbm": rbm, "popularity": pop},
        "device": str(model.device),
    } | extra


def format_table(result: dict[str, Any]) -> str:
    """One table, the RBM beside the popularity baseline (and the cold-start one, if run)."""
    k = result["k"]
    header = ["model", f"P@{k}", f"R@{k}", f"nDCG@{k}", f"MAP@{k}", "like acc", "coverage",
              "train s"]
    rows = []
    for name, m in result["models"].items():
        rows.append([name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['ndcg']:.3f}",
                     f"{m['map']:.3f}", f"{m['like_accuracy']:.3f}", f"{m['coverage']:.3f}",
                     f"{m['train_seconds']:.1f}"])
    lines = _aligned(header, rows)
    d = result["data"]
    lines.append(f"({d['ratings']} ratings, {d['users']} users, {d['items']} items; "
                 f"per-user 75/25 split, seed {d['seed']}; device {result['device']})")
    if result.get("cold_start"):
        header = ["ratings folded in", f"RBM P@{k}", f"popular P@{k}", f"RBM nDCG@{k}",
                  f"popular nDCG@{k}"]
        rows = [[str(r["known"]), f"{r['precision']:.3f}", f"{r['popularity_precision']:.3f}",
                 f"{r['ndcg']:.3f}", f"{r['popularity_ndcg']:.3f}"]
                for r in result["cold_start"]]
        lines += ["", *_aligned(header, rows)]
    return "\n".join(lines)


def _aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    for r in rows:
        lines.append(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return lines
