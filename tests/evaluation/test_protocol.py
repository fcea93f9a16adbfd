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
    result = run_protocol(ratings, k=5, config=RBMConfig(n_hidden=32, n_preference_hidden=16,
                                                         epochs=15, learning_rate=0.05),
                          verbose=0)
    rbm, pop = result["models"]["rbm"], result["models"]["popularity"]
    assert rbm["precision"] > pop["precision"]
    table = format_table(result)
    assert "P@5" in table and "popularity" in table and "rbm" in table
    assert result["data"]["train"] + result["data"]["test"] == len(ratings)
