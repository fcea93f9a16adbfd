"""The issue's quality targets on MovieLens-100k, with the defaults (skipped without the data).

Protocol of ../shared/data/README.md: per-user random 75/25 split (seed 42), training items
excluded from the top-10, every held-out item relevant.
"""

import pytest

from recommender.data import read_ratings
from recommender.evaluation import run_protocol

pytestmark = pytest.mark.movielens


@pytest.fixture(scope="module")
def result(movielens_dir):
    return run_protocol(read_ratings(movielens_dir / "u.data"), k=10, verbose=0)


def test_rbm_beats_targets_and_popularity(result):
    rbm, pop = result["models"]["rbm"], result["models"]["popularity"]
    assert rbm["precision"] >= 0.35
    assert rbm["ndcg"] >= 0.40
    assert rbm["like_accuracy"] >= 0.705
    # The popularity baseline matches the reference figures of the data README.
    assert pop["precision"] == pytest.approx(0.230, abs=0.005)
    assert pop["ndcg"] == pytest.approx(0.256, abs=0.005)
    assert rbm["precision"] > pop["precision"] + 0.1


def test_protocol_shape(result):
    data = result["data"]
    assert (data["ratings"], data["users"], data["items"]) == (100_000, 943, 1682)
    assert data["train"] + data["test"] == 100_000
    assert result["models"]["rbm"]["users"] == 943
