"""The protocol on generated data: table, JSON shape, popularity baseline by hand."""

import pytest

from recommender.data import Ratings, generate_ratings
from recommender.evaluation import evaluate_popularity, format_table, run_protocol
from recommender.rbm import RBMConfig


def test_popularity_baseline_by_hand():
    train = Ratings.from_records([
        ("u1", "a", 5, 0), ("u2", "a", 4, 0), ("u3", "a", 1, 0),
        ("u2", "b", 2, 0), ("u3", "b", 5, 0), ("u1", "c", 3, 0),
    ])
    test = Ratings.from_records([("u1", "b", 4, 0), ("u2", "c", 1, 0), ("u3", "c", 5, 0)])
    m = evaluate_popularity(train, test, k=1)
    # Counts a=3, b=2, c=1. u1 saw a, c -> recommends b (hit); u2 saw a, b -> c (hit);
    # u3 saw a, b -> c (hit).
    assert m["precision"] == pytest.approx(1.0)
    # Like-rates: b 1/2 -> predicts liked (>= 0.5): u1's 4 is liked (right);
    # c 0/1 -> disliked: u2's 1 right, u3's 5 wrong.
    assert m["like_accuracy"] == pytest.approx(2 / 3)


def test_run_protocol_on_generated_data():
    ratings = generate_ratings(n_users=200, n_items=100, ratings_per_user=20, seed=5)
    # 200 users: batches of 32 (the default 128 would make two updates an epoch).
    result = run_protocol(ratings, k=5, config=RBMConfig(n_hidden=32, n_preference_hidden=16,
                                                         epochs=15, learning_rate=0.05,
                                                         batch_size=32),
                          verbose=0)
    rbm, pop = result["models"]["rbm"], result["models"]["popularity"]
    assert rbm["precision"] > pop["precision"]
    table = format_table(result)
    assert "P@5" in table and "popularity" in table and "rbm" in table
    assert result["data"]["train"] + result["data"]["test"] == len(ratings)


def test_cold_start_with_every_rating_known_matches_the_full_protocol():
    """Two implementations cross-checked: folded in from all their training ratings, users get
    the precision of ``evaluate_model`` (dense scoring) and ``evaluate_popularity``."""
    from recommender.data import split_per_user
    from recommender.evaluation import evaluate_cold_start, evaluate_model
    from recommender.rbm import RBMRecommender

    ratings = generate_ratings(n_users=120, n_items=60, ratings_per_user=15, seed=2)
    train, test = split_per_user(ratings, test_fraction=0.25, seed=1)
    model = RBMRecommender(RBMConfig(n_hidden=16, n_preference_hidden=8, epochs=5))
    model.fit(train, verbose=0)
    few, everything = evaluate_cold_start(model, train, test, known=(1, 10_000), k=5)
    full = evaluate_model(model, train, test, k=5)
    pop = evaluate_popularity(train, test, k=5)
    assert everything["known"] == 10_000
    assert everything["precision"] == pytest.approx(full["precision"], abs=1e-9)
    assert everything["ndcg"] == pytest.approx(full["ndcg"], abs=1e-9)
    assert everything["popularity_precision"] == pytest.approx(pop["precision"], abs=1e-9)
    # With one known rating the lists change (the other training items may now come up).
    assert few["precision"] != everything["precision"]
    assert 0.0 <= few["precision"] <= 1.0 and 0.0 <= few["popularity_precision"] <= 1.0


def test_run_protocol_reports_cold_start_rows_in_the_table():
    ratings = generate_ratings(n_users=60, n_items=40, ratings_per_user=12, seed=3)
    result = run_protocol(ratings, k=5, config=RBMConfig(n_hidden=8, n_preference_hidden=4,
                                                         epochs=2), verbose=0, cold_start=(2, 4))
    assert [row["known"] for row in result["cold_start"]] == [2, 4]
    table = format_table(result)
    assert "ratings folded in" in table and "popular P@5" in table
