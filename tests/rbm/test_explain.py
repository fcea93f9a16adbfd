"""Explanations: each rated item's contribution through the engagement hidden units, checked
against a scalar brute force and against the model's own scores (they add up exactly)."""

from __future__ import annotations

import math

import pytest
import torch

from recommender.rbm import RBMConfig, RBMRecommender, explain


def tiny_model(n_items: int = 5, engagement: int = 3, preference: int = 2, seed: int = 0,
               prior_strength: float = 0.0) -> RBMRecommender:
    """A hand-made RBM (random weights, tied engagement rows) over items a, b, c, ..."""
    config = RBMConfig(n_hidden=engagement, n_preference_hidden=preference, device="cpu",
                       prior_strength=prior_strength)
    model = RBMRecommender(config)
    g = torch.Generator().manual_seed(seed)
    hidden = engagement + preference
    W = torch.randn(n_items * 2, hidden, generator=g)
    W3 = W.view(n_items, 2, hidden)
    W3[:, 1, :engagement] = W3[:, 0, :engagement]  # engagement weights tied across states
    model.W = W
    model.a = torch.randn(n_items * 2, generator=g)
    model.b = torch.randn(hidden, generator=g)
    model.prior = torch.randn(n_items, generator=g)
    model.item_ids = [chr(ord("a") + j) for j in range(n_items)]
    model._item_index = {item: j for j, item in enumerate(model.item_ids)}
    return model


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_contributions_match_the_scalar_brute_force() -> None:
    model = tiny_model()
    ratings = {"a": 5, "c": 2, "zz-unknown": 4}
    found = explain.contributions(model, ratings, ["b", "d", "e"])
    for item in ("b", "d", "e"):
        reference = explain.reference_contributions(model, ratings, item)
        got = {c.item_id: c.contribution for c in found[item]}
        assert set(got) == {"a", "c"}  # the unknown item contributes nothing
        for name, value in reference.items():
            assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12)
        # Largest first; shares are contributions over the sum of |contributions|.
        values = [c.contribution for c in found[item]]
        assert values == sorted(values, reverse=True)
        total = sum(abs(v) for v in values)
        assert [c.share for c in found[item]] == pytest.approx([v / total for v in values])
        assert sum(abs(c.share) for c in found[item]) == pytest.approx(1.0)


@pytest.mark.parametrize("ratings", [{"a": 5}, {"a": 5, "b": 1}, {"a": 1, "c": 4, "d": 5}])
def test_contributions_add_up_to_the_change_in_the_items_log_odds(ratings) -> None:
    """With no preference units and no shrinkage, an item's served log-odds of being rated
    moves, between a user with no ratings and this user, by exactly the sum of the rated
    items' contributions (the documented decomposition)."""
    model = tiny_model(preference=0)
    nobody, user = model.score_items([{}, ratings]).double()
    unrated = [item for item in model.item_ids if item not in ratings]
    found = explain.contributions(model, ratings, unrated)
    for item in unrated:
        j = model._item_index[item]
        moved = math.log(user[j] / (1 - user[j])) - math.log(nobody[j] / (1 - nobody[j]))
        assert sum(c.contribution for c in found[item]) == pytest.approx(moved, abs=2e-5)


def test_with_preference_units_the_engagement_part_still_adds_up() -> None:
    """Brute force over the hidden units: t_j(user) - t_j(nobody), t_j = sum_h p_h w_jh over
    the engagement units, equals the contributions' sum, whatever the preference units do."""
    model = tiny_model(engagement=4, preference=3, seed=5)
    ratings = {"a": 4, "b": 1, "e": 5}
    W = model.W.double().tolist()
    b = model.b.double().tolist()
    columns = [model._item_index[i] * 2 + int(v >= 4) for i, v in ratings.items()]
    p = [_sigmoid(b[h] + sum(W[c][h] for c in columns)) for h in range(4)]
    p0 = [_sigmoid(b[h]) for h in range(4)]
    found = explain.contributions(model, ratings, ["c", "d"])
    for item in ("c", "d"):
        row = W[model._item_index[item] * 2]
        moved = sum((p[h] - p0[h]) * row[h] for h in range(4))
        assert sum(c.contribution for c in found[item]) == pytest.approx(moved, rel=1e-9)


def test_a_unit_without_net_input_uses_the_slope_at_its_bias() -> None:
    model = tiny_model(engagement=1, preference=0)
    # Two rated items whose weights on the one unit cancel: c_h = b_h.
    model.W[model._item_index["a"] * 2 + 1, 0] = 0.7
    model.W[model._item_index["b"] * 2, 0] = -0.7
    model.W[model._item_index["b"] * 2 + 1, 0] = -0.7
    names, parts = explain.unit_parts(model, {"a": 5, "b": 1})
    slope = _sigmoid(float(model.b[0])) * (1 - _sigmoid(float(model.b[0])))
    assert names == ["a", "b"]
    assert parts[:, 0].tolist() == pytest.approx([0.7 * slope, -0.7 * slope])
    assert float(parts.sum()) == pytest.approx(0.0, abs=1e-12)


def test_the_profile_ranks_units_by_lift_and_lists_the_heaviest_items() -> None:
    model = tiny_model(n_items=6, engagement=3, preference=1, seed=2)
    ratings = {"a": 5, "f": 2}
    found = explain.profile(model, ratings, units=2, items_per_unit=3)
    b = model.b[:3].double()
    c = b + model.W[[0 * 2 + 1, 5 * 2 + 0], :3].double().sum(dim=0)
    lift = (torch.sigmoid(c) - torch.sigmoid(b)).tolist()
    assert [u.unit for u in found] == sorted(range(3), key=lambda h: -lift[h])[:2]
    for unit in found:
        weights = model.W.view(6, 2, -1)[:, 0, unit.unit].tolist()
        heaviest = sorted(range(6), key=lambda j: -weights[j])[:3]
        assert [i for i, _ in unit.items] == [model.item_ids[j] for j in heaviest]
        assert unit.activation == pytest.approx(float(torch.sigmoid(c[unit.unit])))
        assert unit.baseline == pytest.approx(_sigmoid(float(b[unit.unit])))
    allowed = torch.tensor([True, False, True, True, True, True])
    masked = explain.profile(model, ratings, units=3, items_per_unit=6, allowed=allowed)
    assert all("b" not in [i for i, _ in unit.items] and len(unit.items) == 5 for unit in masked)
