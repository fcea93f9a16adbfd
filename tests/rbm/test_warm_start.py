"""Warm start: ``fit(initial_model=...)`` carries a trained model's parameters over to the new
item index exactly; new items get what a cold fit gives them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recommender.core.callbacks import Callback
from recommender.data import generate_ratings
from recommender.rbm import RBMConfig, RBMRecommender
from recommender.rbm.model import N_STATES

CONFIG = RBMConfig(n_hidden=6, n_preference_hidden=4, epochs=2, batch_size=8, device="cpu",
                   seed=3)


class CaptureStart(Callback):
    """The parameters as training begins (after initialisation, before any update)."""

    def on_train_begin(self, logs=None) -> None:
        self.W, self.a, self.b = self.model.get_weights()


def _fit(data, initial=None, config=CONFIG) -> tuple[RBMRecommender, CaptureStart]:
    capture = CaptureStart()
    model = RBMRecommender(config)
    model.fit(data, verbose=0, callbacks=[capture], initial_model=initial)
    return model, capture


@pytest.fixture(scope="module")
def data():
    return generate_ratings(n_users=50, n_items=24, ratings_per_user=8, seed=5)


def test_old_items_are_carried_over_exactly_and_new_items_start_cold(data) -> None:
    # The first model never saw three items that sort between the others ("i10", "i3",
    # "i7"), so every later item moves to a new row of W when they arrive.
    new_items = {"i10", "i3", "i7"}
    first, _ = _fit(data.subset(~np.isin(data.items, list(new_items))))
    assert not new_items & set(first.item_ids)
    warm, start = _fit(data, initial=first)
    cold, cold_start = _fit(data)
    assert warm.item_ids == cold.item_ids and new_items <= set(warm.item_ids)

    W = start.W.view(-1, N_STATES, start.W.shape[1])
    a = start.a.view(-1, N_STATES)
    W_first = first.W.view(-1, N_STATES, first.W.shape[1])
    a_first = first.a.view(-1, N_STATES)
    W_cold = cold_start.W.view(-1, N_STATES, start.W.shape[1])
    a_cold = cold_start.a.view(-1, N_STATES)
    moved = 0
    for j, item in enumerate(warm.item_ids):
        if item in new_items:
            assert torch.equal(W[j], W_cold[j]) and torch.equal(a[j], a_cold[j]), item
        else:
            old = first.item_ids.index(item)
            moved += old != j
            assert torch.equal(W[j], W_first[old]) and torch.equal(a[j], a_first[old]), item
    assert moved > 10  # the mapping really re-indexes, not a prefix copy
    assert torch.equal(start.b, first.b)
    # The starting point differs from a cold fit's, and training moved on from it.
    assert not torch.equal(start.W, cold_start.W)
    assert not torch.equal(warm.W, start.W)


def test_items_gone_from_the_data_are_dropped(data) -> None:
    first, _ = _fit(data)
    fewer = data.subset(data.items != "i5")
    warm, start = _fit(fewer, initial=first)
    assert "i5" not in warm.item_ids and warm.n_items == first.n_items - 1
    for j, item in enumerate(warm.item_ids):
        old = first.item_ids.index(item)
        assert torch.equal(start.W[2 * j:2 * j + 2], first.W[2 * old:2 * old + 2])


def test_a_different_hidden_layout_is_refused(data) -> None:
    first, _ = _fit(data)
    with pytest.raises(ValueError, match=r"same n_hidden .* Received: n_hidden=6 in "
                                         r"initial_model, n_hidden=7 here"):
        _fit(data, initial=first, config=CONFIG.replace(n_hidden=7))
    with pytest.raises(ValueError, match="same like_threshold"):
        _fit(data, initial=first, config=CONFIG.replace(like_threshold=3.0))


def test_an_untrained_initial_model_is_refused(data) -> None:
    with pytest.raises(ValueError, match="not trained yet"):
        _fit(data, initial=RBMRecommender(CONFIG))
