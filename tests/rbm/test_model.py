"""RBMRecommender: training on planted structure, scoring, fold-in, persistence, bad input."""

import json

import numpy as np
import pytest
import torch

from recommender.core import backend, callbacks, optimizers
from recommender.data import Ratings, generate_ratings, split_per_user
from recommender.evaluation import evaluate_model, evaluate_popularity
from recommender.rbm import RBMConfig, RBMRecommender, scoring
from recommender.rbm import functional as Fn

SMALL = RBMConfig(n_hidden=32, epochs=15, batch_size=16, learning_rate=0.05, seed=1)


@pytest.fixture(scope="module")
def planted():
    ratings = generate_ratings(n_users=300, n_items=120, ratings_per_user=25, seed=3)
    return split_per_user(ratings, seed=42)


@pytest.fixture(scope="module")
def trained(planted):
    train, test = planted
    model = RBMRecommender(SMALL)
    history = model.fit(train, validation=test, verbose=0)
    return model, history


def test_beats_popularity_on_planted_structure(planted, trained):
    train, test = planted
    model, _ = trained
    rbm = evaluate_model(model, train, test, k=10)
    pop = evaluate_popularity(train, test, k=10)
    assert rbm["precision"] > pop["precision"] + 0.05
    assert rbm["ndcg"] > pop["ndcg"] + 0.05
    # The planted like/dislike structure (group items rated high) is learnt too.
    assert rbm["like_accuracy"] > pop["like_accuracy"] + 0.05


def test_history_has_per_epoch_monitors(trained):
    _, history = trained
    h = history.history
    for key in ("reconstruction_error", "val_precision", "val_ndcg", "free_energy_gap"):
        assert len(h[key]) == SMALL.epochs
    # Training lowers the reconstruction error and improves the held-out metric.
    assert h["reconstruction_error"][-1] < h["reconstruction_error"][0]
    assert h["val_ndcg"][-1] > h["val_ndcg"][0]


def test_trains_with_core_optimizer_and_regularizer(trained):
    model, _ = trained
    assert isinstance(model._optimizer, optimizers.SGD)
    assert model._optimizer.iterations == SMALL.epochs * -(-300 // SMALL.batch_size)
    assert model._reg_engagement.l2 == SMALL.weight_decay


def test_recommend_never_returns_rated_items_and_folds_in(trained):
    model, _ = trained
    user = {"i0": 5, "i1": 1, "i2": 4}
    recs = model.recommend([user], k=20)[0]
    assert len(recs) == 20
    returned = [item for item, _ in recs]
    assert not set(returned) & set(user)
    scores = [s for _, s in recs]
    assert scores == sorted(scores, reverse=True)
    # Fold-in: rating the top item changes the list without retraining, and excludes it.
    top_item = returned[0]
    after = model.recommend([{**user, top_item: 5}], k=20)[0]
    assert top_item not in [item for item, _ in after]


def test_recommend_is_batched_and_matches_single_calls(trained):
    model, _ = trained
    users = [{"i3": 5}, {"i10": 2, "i11": 5}, {}]
    batched = model.recommend(users, k=5)
    for mapping, expected in zip(users, batched, strict=True):
        single = model.recommend([mapping], k=5)[0]
        assert [i for i, _ in single] == [i for i, _ in expected]
        np.testing.assert_allclose([s for _, s in single], [s for _, s in expected], rtol=1e-5)


def test_unknown_items_are_ignored_in_fold_in_and_predict_none(trained):
    model, _ = trained
    assert model.recommend([{"i0": 4, "never-seen": 5}], k=5) == model.recommend([{"i0": 4}],
                                                                                 k=5)
    preds = model.predict_like({"i0": 5}, ["i1", "nope"])
    assert preds[1] is None
    assert 0.0 < preds[0] < 1.0


def test_predict_like_is_the_ratio_of_state_probabilities(trained):
    model, _ = trained
    x = model.encode_mappings([{"i0": 5, "i4": 2}])
    probs = model._state_probs(x)[0]
    expected = float(probs[7, 1] / probs[7].sum())
    j = model.item_ids.index("i7")
    expected = float(probs[j, 1] / probs[j].sum())
    assert model.predict_like({"i0": 5, "i4": 2}, ["i7"])[0] == pytest.approx(expected, rel=1e-6)


def test_save_load_round_trip(tmp_path, trained):
    model, _ = trained
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert meta["item_ids"] == model.item_ids
    assert meta["binarization"]["like_threshold"] == 4.0
    assert len(meta["training"]["fingerprint"]) == 16
    loaded = RBMRecommender.load(tmp_path / "m", device="cpu")
    users = [{"i0": 5, "i9": 1}]
    for saved, original in zip(loaded.get_weights(), model.get_weights(), strict=True):
        assert torch.equal(saved, original)
    torch.testing.assert_close(loaded.score_items(users), model.score_items(users))
    assert loaded.config.n_hidden == SMALL.n_hidden


def test_load_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="metadata.json is missing"):
        RBMRecommender.load(tmp_path / "nothing")


def test_early_stopping_restores_best_epoch(planted):
    train, test = planted
    model = RBMRecommender(SMALL.replace(epochs=30))
    stop = callbacks.EarlyStopping(monitor="val_ndcg", patience=2, restore_best_weights=True)
    history = model.fit(train, validation=test, callbacks=[stop], verbose=0)
    assert stop.mode == "max"
    run = len(history.history["val_ndcg"])
    assert run <= 30
    if run < 30:
        assert run == stop.best_epoch + 1 + 2
    # Weights are those of the best epoch: the held-out metric recomputed matches it.
    again = model._validation_logs(*[model.encode(r, {u: i for i, u in enumerate(
        sorted(set(train.users.tolist())))})[0] for r in (train, test)])
    assert again["val_ndcg"] == pytest.approx(stop.best, rel=1e-5)


def test_engagement_weights_stay_tied_and_preference_weights_differ(trained):
    model, _ = trained
    h_e = SMALL.n_hidden
    W3 = model.W.view(-1, 2, model.W.shape[1])  # (items, [disliked, liked], hidden)
    assert torch.equal(W3[:, 0, :h_e], W3[:, 1, :h_e])
    assert not torch.allclose(W3[:, 0, h_e:], W3[:, 1, h_e:])


def test_conditional_statistics_ignore_unrated_items(trained):
    """The preference units' CD: an item nobody in the batch rated gets no update."""
    model, _ = trained
    users = {"u1": {"i0": 5, "i1": 1}, "u2": {"i1": 4, "i2": 2}}
    ratings = Ratings.from_records([(u, i, r, 0) for u, m in users.items() for i, r in m.items()])
    data, _ = model.encode(ratings)
    batch = data.batch(torch.arange(2))
    ph0 = torch.sigmoid(data.dense(torch.arange(2)) @ model.W + model.b)
    g = torch.Generator().manual_seed(0)
    dW, _ = Fn.conditional_cd_sparse(batch, model.W, model.a, model.b, ph0, n_states=2,
                                     generator=g)
    rated_items = {model.item_ids.index(i) for m in users.values() for i in m}
    unrated_rows = torch.tensor([j // 2 not in rated_items for j in range(model.W.shape[0])])
    assert torch.equal(dW[unrated_rows], torch.zeros_like(dW[unrated_rows]))
    assert dW[~unrated_rows].abs().sum() > 0


def test_cd_k_schedule():
    config = RBMConfig(cd_k_schedule=((0, 1), (10, 3), (20, 5), (30, 9)))
    assert [config.k_at(e) for e in (0, 9, 10, 25, 31)] == [1, 1, 3, 5, 9]


def test_batch_size_grows_with_the_users_up_to_max_batch_size():
    config = RBMConfig()  # batch_size 128, max_batch_size 1024
    assert [config.batch_size_for(n) for n in (10, 943, 8192, 16_000, 69_878, 480_189)] == [
        128, 128, 128, 250, 1024, 1024]
    assert RBMConfig(batch_size=16, max_batch_size=16).batch_size_for(69_878) == 16
    # max_batch_size below batch_size: batch_size wins
    assert RBMConfig(batch_size=64, max_batch_size=8).batch_size_for(69_878) == 64


def test_optimizer_iterations_follow_the_grown_batch(planted):
    train, _ = planted  # 300 users: 300 // 64 = 4 < batch_size, so batches of 16
    model = RBMRecommender(SMALL.replace(epochs=1, max_batch_size=1024))
    model.fit(train, verbose=0)
    assert model._optimizer.iterations == -(-300 // 16)
    model = RBMRecommender(SMALL.replace(epochs=1, batch_size=2, max_batch_size=50))
    model.fit(train, verbose=0)  # 300 // 64 = 4 users per batch
    assert model._optimizer.iterations == 300 // 4


@pytest.mark.parametrize("override", [{"cd_k": 2}, {"sample_visible": True},
                                      {"hidden_dropout": 0.2}, {"matmul_dtype": "float32"},
                                      {"n_preference_hidden": 0}])
def test_every_chain_keeps_the_engagement_weights_tied(planted, override):
    """The fast CD-1 and the general chain (k > 1, sampled visible units, dropout) both
    train the compact weights; W is rebuilt from them, tied, after every epoch."""
    train, _ = planted
    model = RBMRecommender(SMALL.replace(epochs=2, **override))
    history = model.fit(train, verbose=0)
    h_e = model.config.n_hidden
    W3 = model.W.view(-1, 2, model.W.shape[1])
    assert torch.equal(W3[:, 0, :h_e], W3[:, 1, :h_e])
    assert torch.equal(W3[:, 0, :h_e], model._W_e)
    assert torch.equal(model.W[:, h_e:], model._W_p)
    assert all(np.isfinite(history.history["reconstruction_error"]))
    assert history.history["epoch_cpu_seconds"][0] > 0


def test_weights_set_between_epochs_are_trained_from():
    """A callback that sets weights at an epoch's end (e.g. restoring the best) is honoured:
    the next epoch starts from them, not from the training copy."""
    seen = []

    class Reset(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                W, a, b = self.model.get_weights()
                self.model.set_weights([torch.zeros_like(W), a, b])
            elif epoch == 1:
                seen.append(self.model.W.abs().max().item())

    ratings = generate_ratings(n_users=60, n_items=30, ratings_per_user=8, seed=2)
    model = RBMRecommender(SMALL.replace(epochs=2, learning_rate=1e-6, momentum=0.0))
    model.fit(ratings, verbose=0, callbacks=[Reset()])
    assert seen[0] < 1e-4  # from zeros, one epoch of tiny steps


def test_matmul_dtype_resolution():
    from recommender.core import backend
    from recommender.rbm.model import resolve_matmul_dtype

    cpu = torch.device("cpu")
    assert resolve_matmul_dtype("float32", cpu) is None
    assert resolve_matmul_dtype("bfloat16", cpu) is torch.bfloat16
    assert resolve_matmul_dtype("auto", cpu) is (
        torch.bfloat16 if backend.cpu_has_fast_bfloat16() else None)
    assert resolve_matmul_dtype("auto", torch.device("cuda")) is None  # tf32 there instead
    with pytest.raises(ValueError, match="matmul_dtype must be 'auto', 'float32' or "
                                         "'bfloat16'. Received: matmul_dtype='fp16'"):
        RBMConfig(matmul_dtype="fp16")
    with pytest.raises(ValueError, match="max_batch_size must be a positive integer"):
        RBMConfig(max_batch_size=0)


# -- bad input ------------------------------------------------------------------------------

def _ratings(rows):
    return Ratings.from_records(rows)


def test_empty_data_is_refused():
    with pytest.raises(ValueError, match="ratings is empty"):
        RBMRecommender(SMALL).fit(_ratings([]), verbose=0)


def test_single_user_or_item_is_refused():
    with pytest.raises(ValueError, match="at least 2 distinct users. Received: 1"):
        RBMRecommender(SMALL).fit(_ratings([("u", "a", 5, 0), ("u", "b", 3, 0)]), verbose=0)
    with pytest.raises(ValueError, match="at least 2 distinct items. Received: 1"):
        RBMRecommender(SMALL).fit(_ratings([("u", "a", 5, 0), ("v", "a", 3, 0)]), verbose=0)


@pytest.mark.parametrize("value, message", [
    (float("nan"), "rating must be a finite number. Received: rating=nan"),
    (7.0, r"rating must be in \[1, 5\]. Received: rating=7"),
    (0.0, r"rating must be in \[1, 5\]. Received: rating=0"),
])
def test_bad_ratings_are_refused_naming_the_value(value, message):
    rows = [("u", "a", 5, 0), ("v", "b", value, 0), ("v", "a", 1, 0)]
    with pytest.raises(ValueError, match=message):
        RBMRecommender(SMALL).fit(_ratings(rows), verbose=0)


def test_duplicates_keep_the_latest_rating():
    rows = [("u", "a", 5, 10), ("u", "a", 1, 20), ("v", "b", 4, 0), ("v", "a", 2, 0),
            ("u", "b", 1, 5)]
    model = RBMRecommender(SMALL.replace(epochs=1))
    model.fit(_ratings(rows), verbose=0)
    assert model.metadata["training"]["n_ratings"] == 4


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="n_hidden must be a positive integer. Received: "
                                         "n_hidden=0"):
        RBMConfig(n_hidden=0)
    with pytest.raises(ValueError, match="momentum must be in"):
        RBMConfig(momentum=1.5)
    with pytest.raises(ValueError, match=r"Unknown RBM hyper-parameter\(s\): \['hidden'\]"):
        RBMConfig().replace(hidden=3)


def test_bad_k_and_untrained_model():
    with pytest.raises(ValueError, match="not trained yet"):
        RBMRecommender(SMALL).recommend([{"a": 1}], k=3)
    model = RBMRecommender(SMALL.replace(epochs=1))
    model.fit(_ratings([("u", "a", 5, 0), ("v", "b", 4, 0)]), verbose=0)
    with pytest.raises(ValueError, match="k must be a positive integer. Received: k=0"):
        model.recommend([{"a": 1}], k=0)
    with pytest.raises(ValueError, match="Received a single mapping"):
        model.recommend({"a": 1}, k=1)


def test_fold_in_encoding_matches_a_per_user_brute_force(trained):
    model, _ = trained
    users = [{"i0": 5, "i3": 1.0}, {}, {"never-seen": 4, "i2": 4}, {"i1": 3.5, "i0": 4}]
    batch = model._encode_entries(users)
    expected = torch.zeros(len(users), model.n_items * 2)
    for row, mapping in enumerate(users):
        for item, rating in mapping.items():
            if item in model.item_ids:
                expected[row, model.item_ids.index(item) * 2 + int(rating >= 4)] = 1.0
    assert torch.equal(batch.dense(model.n_items * 2), expected)
    assert batch.offsets.tolist() == [0, 2, 2, 3]  # empty and unknown-only rows keep a bag
    # Item ids given as numbers are looked up as text.
    numbered = RBMRecommender(SMALL)
    numbered.fit(_ratings([("u", "1", 5, 0), ("v", "2", 3, 0), ("v", "1", 1, 0)]), verbose=0)
    assert torch.equal(numbered._encode_entries([{1: 5, 2: 2}]).dense(4),
                       numbered._encode_entries([{"1": 5, "2": 2}]).dense(4))


def test_a_non_finite_fold_in_rating_names_the_item(trained):
    model, _ = trained
    with pytest.raises(ValueError, match=r"rating=nan \(item='i4'\)"):
        model.recommend([{"i0": 5}, {"i1": 3, "i4": float("nan")}], k=3)


def _expected_scores(model, users) -> torch.Tensor:
    """Brute force in float64: p(rated) = p(disliked) + p(liked) from the state probabilities,
    its log-odds shrunk toward the population prior by (n * user + c * prior) / (n + c)."""
    x = model.encode_mappings(users).double()
    rated = x.view(len(users), -1, 2).sum(dim=-1) > 0
    W, a, b = (w.double() for w in model.get_weights())
    p = Fn.visible_probs(Fn.hidden_probs(x, W, b), W, a, 2).view(len(users), -1, 2).sum(dim=-1)
    n = rated.sum(dim=1, keepdim=True).double()
    c = model.config.prior_strength
    shrunk = (n * torch.log(p / (1 - p)) + c * model.prior.double()) / (n + c)
    return torch.sigmoid(shrunk).float().masked_fill(rated, float("-inf"))


def test_public_dense_scores_equal_the_serving_path(trained):
    """scores_from_dense (the textbook reference, used by evaluation) and score_items (the
    sparse serving path through the rearranged weights) give the same ranking scores, and its
    state probabilities are _state_probs'."""
    model, _ = trained
    users = [{"i0": 5, "i4": 2}, {"i7": 4}, {}]
    x = model.encode_mappings(users)
    scores, probs = model.scores_from_dense(x)
    torch.testing.assert_close(scores, model.score_items(users))
    torch.testing.assert_close(scores, _expected_scores(model, users))
    torch.testing.assert_close(probs, model._state_probs(x))


def test_every_attribute_is_born_in_init(planted):
    """initialize() gives attributes values; it creates none that __init__ did not declare."""
    train, _ = planted
    model = RBMRecommender(SMALL, epochs=1)
    declared = set(vars(model))
    model.fit(train, verbose=0)
    model.recommend([{"i0": 5}], k=3)  # fills the serving cache
    assert set(vars(model)) == declared


@pytest.fixture(params=[1, 3])
def scoring_threads(request, monkeypatch):
    """Batches scored on the caller's thread alone, or on three threads in item blocks (of
    at least 4 items here, so that the small test catalogues split too)."""
    monkeypatch.setattr(scoring, "MIN_BLOCK_ITEMS", 4)
    backend.set_scoring_threads(request.param)
    yield request.param
    backend.set_scoring_threads(1)


@pytest.mark.parametrize("k", [1, 7, 41, 120])
def test_scores_in_item_blocks_equal_the_whole_batchs(trained, k, monkeypatch) -> None:
    """Three scoring threads give every user the scores one thread gives (the model's items
    in blocks of a third each), and the same ranking: each block's top k merged, for k
    below a block's width, above it (41 of 3 x ~40) and the whole catalogue."""
    model, _ = trained
    monkeypatch.setattr(scoring, "MIN_BLOCK_ITEMS", 4)
    g = torch.Generator().manual_seed(5)
    users = [{model.item_ids[j]: float(1 + j % 5)
              for j in torch.randperm(model.n_items, generator=g)[:n].tolist()}
             for n in (0, 1, 2, 3, 5, 8, 13, 21, 1, 2, 3, 5, 8)]
    whole = model.score_items(users)
    lists = model.recommend(users, k=k)
    backend.set_scoring_threads(3)
    try:
        assert backend.scoring_threads()[0] == 3
        edges = model._in_item_blocks(lambda start, stop: (start, stop))
        assert edges == [(0, 40), (40, 80), (80, 120)] and model.n_items == 120
        torch.testing.assert_close(model.score_items(users), whole)
        again = model.recommend(users, k=k)
    finally:
        backend.set_scoring_threads(1)
    for top, one in zip(again, lists, strict=True):
        torch.testing.assert_close(torch.tensor([s for _, s in top]),
                                   torch.tensor([s for _, s in one]))
    # Each list is the top k of the exact scores without the user's rated items; items of
    # equal score (the user without ratings ranks by the prior: many ties) in either order.
    index = {item: j for j, item in enumerate(model.item_ids)}
    for user, top, row in zip(users, again, whole, strict=True):
        unrated = [j for j in range(model.n_items) if model.item_ids[j] not in user]
        best = sorted(unrated, key=lambda j: -float(row[j]))[:k]
        assert [s for _, s in top] == pytest.approx([float(row[j]) for j in best], rel=1e-5)
        assert len({item for item, _ in top}) == len(top)
        for item, score in top:
            assert item not in user and score == pytest.approx(float(row[index[item]]), rel=1e-5)


def test_blocks_run_on_the_pool_with_weights_built_once(trained, monkeypatch) -> None:
    """On a cold cache the weights are built (and numpy timed against torch) once, in the
    calling thread, and the blocks run on two threads, with autograd off in the pool's even
    for weights that require grad (numpy refuses to read such a tensor)."""
    import threading

    model, _ = trained
    monkeypatch.setattr(scoring, "MIN_BLOCK_ITEMS", 4)
    users = [{model.item_ids[j]: 5.0} for j in range(16)]
    want = model.recommend(users, k=5)
    builds, threads_seen, blocks = [], set(), []
    monkeypatch.setattr(backend, "numpy_products_are_faster", lambda: builds.append(1) or True)
    ranked = type(model)._top_of_items

    def spy(self, *args):
        threads_seen.add(threading.current_thread().name)
        blocks.append(args[-2:])
        return ranked(self, *args)

    monkeypatch.setattr(type(model), "_top_of_items", spy)
    model._serving = None
    backend.set_scoring_threads(2)
    model.b.requires_grad_(True)
    try:
        got = model.recommend(users, k=5)
    finally:
        model.b.requires_grad_(False)
        backend.set_scoring_threads(1)
        model._serving = None
    assert builds == [1]
    assert len(threads_seen) == 2 and any(n.startswith("scoring") for n in threads_seen)
    half = model.n_items // 2
    assert sorted(blocks) == [(0, half), (half, model.n_items)]
    assert [[i for i, _ in top] for top in got] == [[i for i, _ in top] for top in want]


def test_set_scoring_threads_refuses_a_bad_count() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=f"threads must be a positive integer. "
                                             f"Received: threads={bad!r}"):
            backend.set_scoring_threads(bad)
    assert backend.scoring_threads() == (1, None)


@pytest.fixture(params=["torch", "numpy"])
def products(request, monkeypatch):
    """Which library runs the serving's full products: torch's BLAS, or numpy's on the
    transposed weights (chosen per machine by backend.numpy_products_are_faster)."""
    through_numpy = request.param == "numpy"
    monkeypatch.setattr(backend, "numpy_products_are_faster", lambda: through_numpy)
    return through_numpy


def test_ranking_scores_are_p_rated_for_tied_untied_and_changed_weights(trained, products):
    model, _ = trained
    model._serving = None  # rebuilt for the product path under test
    users = [{"i0": 5, "i4": 2}, {"i7": 4}, {}]

    def expected() -> torch.Tensor:
        return _expected_scores(model, users)

    torch.testing.assert_close(model.score_items(users), expected())
    W, a, b = (w.clone() for w in model.get_weights())
    try:
        g = torch.Generator().manual_seed(3)
        # Untied engagement weights: the serving split must notice and still be exact.
        model.set_weights([torch.randn(W.shape, generator=g), torch.randn(a.shape, generator=g),
                           b])
        torch.testing.assert_close(model.score_items(users), expected())
        model.a.add_(1.0)  # an in-place change after the serving weights were built
        torch.testing.assert_close(model.score_items(users), expected())
    finally:
        model.set_weights([W, a, b])
    torch.testing.assert_close(model.score_items(users), expected())
    assert (model._serving_weights().W_states_T is not None) is products
    model._serving = None  # the next test builds them for this machine


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n_hidden, n_preference_hidden", [(8, 0), (1, 6), (5, 5)])
def test_ranking_scores_for_every_hidden_layout(n_hidden, n_preference_hidden, threads,
                                                products, scoring_threads, monkeypatch):
    """Trains and serves on one and on two threads, through either library's products:
    without preference units a width-0 embedding bag used to raise in fit and recommend on
    two (torch's kernel; Fn.bag_sum), and numpy gets a width-0 product."""
    monkeypatch.setenv("RECOMMENDER_THREADS", str(threads))  # fit's configure_threads
    before = torch.get_num_threads()
    try:
        _check_hidden_layout(n_hidden, n_preference_hidden)
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def _check_hidden_layout(n_hidden: int, n_preference_hidden: int) -> None:
    ratings = generate_ratings(n_users=50, n_items=30, ratings_per_user=8, seed=1)
    model = RBMRecommender(RBMConfig(n_hidden=n_hidden, n_preference_hidden=n_preference_hidden,
                                     epochs=2))
    model.fit(ratings, verbose=0)
    users = [{ratings.items[0]: 5.0, ratings.items[1]: 1.0}, {}]
    users += [{ratings.items[(u + j) % 30]: float(1 + j % 5) for j in range(u % 6)}
              for u in range(10)]  # 12 users; three scoring threads split the items in blocks
    torch.testing.assert_close(model.score_items(users), _expected_scores(model, users))
    top = model.recommend(users, k=3)
    assert [s for _, s in top[1]] == sorted((s for _, s in top[1]), reverse=True)
    assert not {item for item, _ in top[0]} & set(users[0])
    assert model.score_items([]).shape == (0, model.n_items)


def test_ranking_shrinks_new_users_toward_the_population(planted, trained):
    (train, _), (model, _) = planted, trained
    # The prior is the training data's log-odds that a user rates each item.
    counts = torch.zeros(model.n_items)
    for item in train.items:
        counts[model.item_ids.index(item)] += 1
    n_users = len(set(train.users.tolist()))
    torch.testing.assert_close(model.prior, torch.log((counts + 1) / (n_users + 1.5 - counts - 1)))
    # A user with no known ratings is ranked by the prior alone: the most rated items first.
    (empty,) = model.score_items([{}])
    torch.testing.assert_close(empty, torch.sigmoid(model.prior))
    # Without the prior the scores are the RBM's p(rated).
    plain = RBMRecommender(model.config.replace(prior_strength=0))
    plain.item_ids, plain._item_index = model.item_ids, model._item_index
    plain.W, plain.a, plain.b, plain.prior = model.W, model.a, model.b, model.prior
    x = plain.encode_mappings([{"i0": 5}])
    torch.testing.assert_close(plain.score_items([{"i0": 5}])[0],
                               plain._state_probs(x).sum(dim=-1)[0].masked_fill(
                                   x.view(-1, 2).sum(dim=-1) > 0, float("-inf")))


def test_the_prior_is_saved_and_optional_on_load(tmp_path, trained):
    from safetensors.torch import load_file, save_file

    model, _ = trained
    model.save(tmp_path / "m")
    loaded = RBMRecommender.load(tmp_path / "m", device="cpu")
    assert torch.equal(loaded.prior, model.prior)
    # An artifact written before the prior existed loads and ranks by p(rated) alone.
    path = tmp_path / "m" / "weights.safetensors"
    save_file({k: v for k, v in load_file(str(path)).items() if k != "prior"}, str(path))
    old = RBMRecommender.load(tmp_path / "m", device="cpu")
    assert old.prior is None
    x = old.encode_mappings([{"i0": 5}])
    expected = old._state_probs(x).sum(dim=-1)[0].masked_fill(x.view(-1, 2).sum(dim=-1) > 0,
                                                              float("-inf"))
    torch.testing.assert_close(old.score_items([{"i0": 5}])[0], expected)
