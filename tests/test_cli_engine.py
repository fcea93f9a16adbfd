"""`recommender train` and `recommender evaluate`: the engine from the command line."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recommender.cli import app
from recommender.data import generate_ratings
from recommender.rbm import RBMRecommender, resolve_device

runner = CliRunner()
SMALL = ["-p", "n_hidden=16", "-p", "n_preference_hidden=8", "-p", "epochs=3"]


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory) -> Path:
    r = generate_ratings(n_users=60, n_items=40, ratings_per_user=12, seed=2)
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    path.write_text("".join(f"{u},{i},{v:g},{t}\n" for u, i, v, t in
                            zip(r.users, r.items, r.values, r.timestamps, strict=True)))
    return path


def test_evaluate_json_has_both_models(ratings_csv: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--ratings", str(ratings_csv), "--json", "--k", "5",
                                 "--cold-start", "1", "--cold-start", "3", *SMALL])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["k"] == 5
    assert [row["known"] for row in out["cold_start"]] == [1, 3]
    assert set(out["models"]) == {"rbm", "popularity"}
    for metrics in out["models"].values():
        assert 0.0 <= metrics["precision"] <= 1.0
        assert 0.0 <= metrics["like_accuracy"] <= 1.0
    assert out["config"]["n_hidden"] == 16


def test_evaluate_prints_a_table(ratings_csv: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--ratings", str(ratings_csv), *SMALL])
    assert result.exit_code == 0, result.output
    assert "P@10" in result.output and "popularity" in result.output


def test_train_saves_a_loadable_model(ratings_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    result = runner.invoke(app, ["train", "--ratings", str(ratings_csv), "--out", str(out),
                                 *SMALL])
    assert result.exit_code == 0, result.output
    assert "saved to" in result.output
    model = RBMRecommender.load(out, device="cpu")
    assert model.metadata["training"]["n_users"] == 60
    assert model.config.epochs == 3


def test_bad_hyper_parameter_names_the_field(ratings_csv: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--ratings", str(ratings_csv), "-p", "n_hidden=0"])
    assert result.exit_code == 2
    assert "n_hidden must be a positive integer. Received: n_hidden=0" in result.output
    result = runner.invoke(app, ["evaluate", "--ratings", str(ratings_csv), "-p", "bogus"])
    assert result.exit_code == 2
    assert "--param expects KEY=VALUE. Received: 'bogus'" in result.output


def test_bad_rating_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("u1,i1,5\nu2,i2,nine\n")
    result = runner.invoke(app, ["evaluate", "--ratings", str(path), *SMALL])
    assert result.exit_code == 2
    assert "bad.csv:2: rating must be a number" in result.output


def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
