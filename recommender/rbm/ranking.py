"""Ranking metrics at k, batched on torch tensors, and like/dislike accuracy.

Conventions (those of ``../shared/data/README.md``): every held-out item is relevant;
``recall@k = hits / |relevant|``; ``nDCG@k`` with binary gains and ideal DCG over
``min(|relevant|, k)`` positions; ``MAP@k = sum_i precision@i * rel_i / min(|relevant|, k)``.
Users without held-out items are skipped by the caller.
"""

from __future__ import annotations

import torch


def ranking_metrics(top_items: torch.Tensor, relevant: torch.Tensor,
                    n_relevant: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-user precision, recall, nDCG and AP at k.

    top_items: (users, k) item indices, best first.
    relevant: (users, n_items) bool, the held-out items of each user.
    Returns a dict of (users,) float tensors.
    """
    users, k = top_items.shape
    hits = torch.gather(relevant, 1, top_items).to(torch.float64)  # (users, k)
    if n_relevant is None:
        n_relevant = relevant.sum(dim=1)
    n_rel = n_relevant.to(torch.float64).clamp_min(1.0)
    positions = torch.arange(1, k + 1, dtype=torch.float64, device=top_items.device)
    discounts = 1.0 / torch.log2(positions + 1.0)  # (k,)
    dcg = (hits * discounts).sum(dim=1)
    ideal_len = torch.minimum(n_rel, torch.tensor(float(k), dtype=torch.float64))
    ideal_cum = torch.cumsum(discounts, dim=0)  # (k,)
    idcg = ideal_cum[(ideal_len - 1).long()]
    precision_at_i = torch.cumsum(hits, dim=1) / positions
    ap = (precision_at_i * hits).sum(dim=1) / ideal_len
    return {
        "precision": hits.sum(dim=1) / k,
        "recall": hits.sum(dim=1) / n_rel,
        "ndcg": dcg / idcg,
        "map": ap,
    }


def like_accuracy(p_like: torch.Tensor, liked: torch.Tensor) -> float:
    """Share of held-out ratings whose like/dislike is predicted right (threshold 0.5)."""
    if p_like.numel() == 0:
        return float("nan")
    return float(((p_like >= 0.5) == liked.bool()).double().mean())
