"""recommend() on a large catalogue: bf16 candidates rescored in fp32 give the exact top k.

The reference is brute force: every item's exact score (``score_items``, the fp32 path that
``scores_from_dense`` is tested against) sorted in Python. The candidate search runs on any
CPU here (bf16 products are slow without AVX512-BF16/AMX, but exact), forced by patching the
capability check that turns it on.
"""

from __future__ import annotations

import pytest
import torch

from recommender.core import backend
from recommender.data import generate_ratings
from recommender.rbm import RBMConfig, RBMRecommender, scoring

N_ITEMS = 800  # generated; the model sees ~600 >= 8 * 2 * 32: k <= 32 searches at share 8


@pytest.fixture(scope="module")
def model() -> RBMRecommender:
    ratings = generate_ratings(n_users=150, n_items=N_ITEMS, ratings_per_user=20, seed=5)
    model = RBMRecommender(RBMConfig(n_hidden=12, n_preference_hidden=10, epochs=2, seed=2))
    model.fit(ratings, verbose=0)
    assert model.n_items >= 8 * max(scoring.CANDIDATES, 2 * 32)
    return model


@pytest.fixture
def searching(model: RBMRecommender, monkeypatch: pytest.MonkeyPatch) -> RBMRecommender:
    """The model with the candidate search on (rebuilds the serving weights)."""
    monkeypatch.setattr(backend, "cpu_has_fast_bfloat16", lambda: True)
    monkeypatch.setattr(scoring, "CANDIDATE_SHARE", 8)  # a small model, searched all the same
    model._serving = None
    yield model
    model._serving = None  # the next user builds them for its own CPU


def _users(model: RBMRecommender) -> list[dict[str, float]]:
    g = torch.Generator().manual_seed(0)
    users: list[dict[str, float]] = [{}]
    for n in (1, 2, 5, 20, 60, 200):  # few ratings: shrunk toward the population
        picks = torch.randperm(model.n_items, generator=g)[:n].tolist()
        users.append({model.item_ids[j]: float(1 + j % 5) for j in picks})
    return users


def _brute_force(model: RBMRecommender, users: list[dict[str, float]], k: int,
                 allowed: torch.Tensor | None = None) -> list[list[tuple[str, float]]]:
    """Every item's exact score, sorted in Python; rated and disallowed items left out."""
    scores = model.score_items(users)
    out = []
    for row, user in enumerate(users):
        ok = allowed if allowed is None or allowed.dim() == 1 else allowed[row]
        ranked = sorted(
            ((float(s), model.item_ids[j]) for j, s in enumerate(scores[row].tolist())
             if model.item_ids[j] not in user and (ok is None or bool(ok[j]))), reverse=True)
        out.append([(item, s) for s, item in ranked][:k])
    return out


def _assert_same(got: list[list[tuple[str, float]]], want: list[list[tuple[str, float]]]) -> None:
    """The same lists, except that items of equal scores (the prior alone ranks a user
    without ratings, and items seen equally often have equal priors) may come in any order:
    the scores match rank by rank, and each item's score is its own exact score."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert len(g) == len(w) and len({item for item, _ in g}) == len(g)
        torch.testing.assert_close(torch.tensor([s for _, s in g]),
                                   torch.tensor([s for _, s in w]), rtol=1e-5, atol=1e-7)
        exact = dict(w)
        for item, score in g:
            if item not in exact:  # a tie at the k-th score, broken the other way
                assert score == pytest.approx(w[-1][1], rel=1e-5)
            else:
                assert score == pytest.approx(exact[item], rel=1e-5)
        ties = sum(1 for _, s in w if s == pytest.approx(w[-1][1], rel=1e-5))
        assert len({item for item, _ in g} ^ set(exact)) <= 2 * ties


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("k", [1, 10, 32])
def test_the_candidate_search_returns_the_exact_top_k(searching: RBMRecommender, k: int,
                                                      threads: int) -> None:
    """On one scoring thread, and on two (the bounds computed in two blocks of users)."""
    users = _users(searching) * 2  # 14 users: two blocks of 7
    assert searching._serving_weights().W_states16 is not None  # the search is on
    want = _brute_force(searching, users, k)
    backend.set_scoring_threads(threads)
    try:
        _assert_same(searching.recommend(users, k=k), want)
    finally:
        backend.set_scoring_threads(1)


def test_masks_apply_before_the_search(searching: RBMRecommender) -> None:
    users = _users(searching)
    g = torch.Generator().manual_seed(1)
    shared = torch.rand(searching.n_items, generator=g) > 0.3
    _assert_same(searching.recommend(users, k=10, allowed=shared),
                 _brute_force(searching, users, 10, shared))
    per_user = torch.rand(len(users), searching.n_items, generator=g) > 0.5
    per_user[1, :] = False
    per_user[1, :4] = True  # fewer allowed items than k: the list is shorter, never padded
    got = searching.recommend(users, k=10, allowed=per_user)
    _assert_same(got, _brute_force(searching, users, 10, per_user))
    assert len(got[1]) == 4


def test_an_uncertain_list_is_scored_in_full(searching: RBMRecommender,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A bound too loose to certify anything: every user takes the exact full path."""
    monkeypatch.setattr(scoring, "BF16_ERROR", 1e3)
    calls = []
    full = scoring.ScoringMixin._log_odds_of_hidden

    def spy(self, ph, *args):  # type: ignore[no-untyped-def]
        calls.append(ph.shape[0])
        return full(self, ph, *args)

    users = _users(searching)
    g = torch.Generator().manual_seed(2)
    allowed = torch.rand(len(users), searching.n_items, generator=g) > 0.4
    want = _brute_force(searching, users, 10, allowed)  # before the spy: it scores in full
    monkeypatch.setattr(scoring.ScoringMixin, "_log_odds_of_hidden", spy)
    _assert_same(searching.recommend(users, k=10, allowed=allowed), want)
    assert sum(calls) >= len(users) - 1  # the user without ratings is certain: pure prior


def test_the_bf16_bound_holds_on_large_random_weights(searching: RBMRecommender) -> None:
    """_upper_log_odds >= the exact log-odds everywhere, with weights far from a trained
    model's (the bound's argument does not depend on them), and not absurdly loose."""
    W, a, b = (t.clone() for t in searching.get_weights())
    try:
        g = torch.Generator().manual_seed(4)
        searching.set_weights([torch.randn(W.shape, generator=g) * 2,
                               torch.randn(a.shape, generator=g) * 3, b])
        users = _users(searching)
        w = searching._serving_weights()
        ph, _, n_known = searching._hidden_of(searching._encode_entries(users), w)
        exact = searching._log_odds_of_hidden(ph, n_known, w)
        upper = searching._upper_log_odds(ph, n_known, w)
        assert bool((upper >= exact).all())
        assert float((upper - exact).max()) < 0.05 * float(exact.abs().max())
        _assert_same(searching.recommend(users, k=10), _brute_force(searching, users, 10))
    finally:
        searching.set_weights([W, a, b])


def test_small_catalogues_and_slow_bf16_take_the_exact_path(model: RBMRecommender,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            ) -> None:
    monkeypatch.setattr(backend, "cpu_has_fast_bfloat16", lambda: False)
    model._serving = None
    try:
        assert model._serving_weights().W_states16 is None
        users = _users(model)
        _assert_same(model.recommend(users, k=10), _brute_force(model, users, 10))
    finally:
        model._serving = None
    # k so large that the candidates would be most of the catalogue: the full products.
    monkeypatch.setattr(backend, "cpu_has_fast_bfloat16", lambda: True)
    users = _users(model)
    calls = []
    full = scoring.ScoringMixin._top_of_items

    def spy(self, ph, *args):  # type: ignore[no-untyped-def]
        calls.append(ph.shape[0])
        return full(self, ph, *args)

    want = _brute_force(model, users, 100)
    monkeypatch.setattr(scoring.ScoringMixin, "_top_of_items", spy)
    _assert_same(model.recommend(users, k=100), want)
    assert calls == [len(users)]
    model._serving = None


@pytest.mark.parametrize("search", [True, False])
def test_per_user_masks_follow_their_rows_into_the_blocks(model: RBMRecommender, search: bool,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Two scoring threads split 14 users in blocks of 7 for the candidate search, each
    block with its own users' rows of a per-user mask; and the items in two blocks for the
    full products, each with its own columns of the mask."""
    monkeypatch.setattr(backend, "cpu_has_fast_bfloat16", lambda: search)
    monkeypatch.setattr(scoring, "CANDIDATE_SHARE", 8)
    monkeypatch.setattr(scoring, "MIN_BLOCK_ITEMS", 4)
    model._serving = None
    users = _users(model) * 2
    g = torch.Generator().manual_seed(3)
    per_user = torch.rand(len(users), model.n_items, generator=g) > 0.5
    per_user[9, :] = False
    per_user[9, :3] = True  # a user in the second block with 3 allowed items
    want = _brute_force(model, users, 10, per_user)
    backend.set_scoring_threads(2)
    try:
        got = model.recommend(users, k=10, allowed=per_user)
    finally:
        backend.set_scoring_threads(1)
        model._serving = None
    _assert_same(got, want)
    assert len(got[9]) == 3
