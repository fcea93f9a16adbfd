"""Why an item was recommended: the user's rated items that raised its score, through the
hidden units; and which hidden units a user's ratings switch on.

The ranking score of item ``j`` is its log-odds of being rated (``scoring.py``). The engagement
hidden units ``h`` have tied weights ``w_jh`` (equal for the liked and disliked state), so
their part of the log-odds is exactly ``t_j = sum_h p_h w_jh`` with ``p_h = sigmoid(c_h)``
and ``c_h = b_h + sum_i w_{i s_i h}`` over the user's rated items ``i`` in states ``s_i``.

Contributions (the documented decomposition, checked by brute force in the tests):

* each unit's activation above the "nobody" baseline, ``p_h - sigmoid(b_h)``, is split over
  the rated items in proportion to their input ``w_{i s_i h} / (c_h - b_h)`` (when
  ``c_h = b_h`` the limit ``sigmoid'(b_h)`` is used), so the items' parts add up to it;
* item ``i``'s contribution to item ``j`` is ``sum_h part_ih * w_jh``.

Hence the contributions to item ``j`` add up to ``t_j(user) - t_j(nobody)``: how much the
user's ratings moved ``j``'s log-odds through the engagement units (before the ranking's
shrinkage toward the population, ``config.prior_strength``, which scales it by
``n / (n + c)``). A contribution's ``share`` is it divided by the sum of the absolute
contributions to the same item, so the shares' absolute values add up to 1. The preference
units (like vs dislike) are left out: they move which rated state is likelier, not whether
the item is rated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .encoding import N_STATES
from .model import RBMRecommender


@dataclass(frozen=True)
class Contribution:
    item_id: str  # a rated item of the user
    contribution: float  # to the recommended item's log-odds, through the engagement units
    share: float  # contribution / sum of |contributions| to that item


def _rated_rows(
    model: RBMRecommender, ratings: Mapping[str, float]
) -> tuple[list[str], torch.Tensor]:
    """The user's items the model knows, and their columns ``item * 2 + state`` in W."""
    names, columns = [], []
    for item, value in ratings.items():
        j = model._item_index.get(str(item))
        if j is None:
            continue
        names.append(str(item))
        columns.append(j * N_STATES + int(float(value) >= model.config.like_threshold))
    return names, torch.tensor(columns, dtype=torch.long, device=model.W.device)


def unit_parts(
    model: RBMRecommender, ratings: Mapping[str, float]
) -> tuple[list[str], torch.Tensor]:
    """``(rated item ids, parts (rated, n_hidden))``: each rated item's share of each
    engagement unit's activation above its baseline; columns add up to
    ``p_h - sigmoid(b_h)``."""
    n_tied = model.config.n_hidden
    names, columns = _rated_rows(model, ratings)
    W = model.W[:, :n_tied].double()
    b = model.b[:n_tied].double()
    inputs = W[columns]  # (rated, n_hidden): w_{i s_i h}
    delta = inputs.sum(dim=0)  # c_h - b_h
    lift = torch.sigmoid(b + delta) - torch.sigmoid(b)
    slope = torch.sigmoid(b) * (1 - torch.sigmoid(b))  # the limit where delta is 0
    small = delta.abs() < 1e-12
    ratio = torch.where(small, slope, lift / torch.where(small, torch.ones_like(delta), delta))
    return names, inputs * ratio


@torch.no_grad()
def contributions(
    model: RBMRecommender, ratings: Mapping[str, float], item_ids: Sequence[str]
) -> dict[str, list[Contribution]]:
    """For each of ``item_ids`` (unknown ones omitted): every rated item's contribution,
    largest first. See the module docstring for what adds up to what."""
    names, parts = unit_parts(model, ratings)  # (rated, n_tied)
    n_tied = model.config.n_hidden
    W3 = model.W.view(-1, N_STATES, model.W.shape[1])
    out: dict[str, list[Contribution]] = {}
    for item in item_ids:
        j = model._item_index.get(str(item))
        if j is None:
            continue
        values = (parts @ W3[j, 0, :n_tied].double()).tolist() if names else []
        total = sum(abs(v) for v in values) or 1.0
        ranked = sorted(zip(names, values, strict=True), key=lambda p: -p[1])
        out[str(item)] = [Contribution(i, float(v), float(v / total)) for i, v in ranked]
    return out


def reference_contributions(
    model: RBMRecommender, ratings: Mapping[str, float], item: str
) -> dict[str, float]:
    """The decomposition one scalar at a time (for tests): ``{rated item: contribution}``."""
    n_tied = model.config.n_hidden
    W = model.W.double().tolist()
    b = model.b.double().tolist()
    rated = []
    for name, value in ratings.items():
        i = model._item_index.get(name)
        if i is not None:
            rated.append((name, i * N_STATES + int(value >= model.config.like_threshold)))
    j = model._item_index[item] * N_STATES  # engagement weights are tied: either state
    out = {name: 0.0 for name, _ in rated}
    for h in range(n_tied):
        delta = sum(W[column][h] for _, column in rated)
        base = 1 / (1 + pow(2.718281828459045, -b[h]))
        if abs(delta) < 1e-12:
            ratio = base * (1 - base)
        else:
            ratio = (1 / (1 + pow(2.718281828459045, -(b[h] + delta))) - base) / delta
        for name, column in rated:
            out[name] += W[column][h] * ratio * W[j][h]
    return out


@dataclass(frozen=True)
class UnitProfile:
    unit: int  # engagement hidden unit index
    activation: float  # p(h = 1 | the user's ratings)
    baseline: float  # p(h = 1) for a user with no ratings: sigmoid(b_h)
    items: list[tuple[str, float]]  # the items loading most on the unit: (item_id, weight)


@torch.no_grad()
def profile(
    model: RBMRecommender,
    ratings: Mapping[str, float],
    *,
    units: int = 3,
    items_per_unit: int = 5,
    allowed: torch.Tensor | None = None,
) -> list[UnitProfile]:
    """The user's most active engagement units (largest lift of ``p_h`` over the baseline),
    each with the items of largest weight on it (among ``allowed`` items, if given)."""
    n_tied = model.config.n_hidden
    if n_tied == 0:
        return []
    _, columns = _rated_rows(model, ratings)
    b = model.b[:n_tied]
    c = b + model.W[columns, :n_tied].sum(dim=0)
    p, base = torch.sigmoid(c), torch.sigmoid(b)
    order = torch.argsort(p - base, descending=True)[: min(units, n_tied)].tolist()
    weights = model.W.view(-1, N_STATES, model.W.shape[1])[:, 0, :n_tied]  # (items, n_tied)
    out = []
    for h in order:
        column = weights[:, h].clone()
        if allowed is not None:
            column.masked_fill_(~allowed, float("-inf"))
        top = column.topk(min(items_per_unit, column.numel()))
        loading = [
            (model.item_ids[j], float(w))
            for j, w in zip(top.indices.tolist(), top.values.tolist(), strict=True)
            if w != float("-inf")
        ]
        out.append(UnitProfile(int(h), float(p[h]), float(base[h]), loading))
    return out
