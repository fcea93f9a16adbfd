"""`recommender models publish/list/activate` (a model trained offline, served by a deployment)
and `recommender train --init-from` (warm start), on both databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recommender import store
from recommender.cli import app
from recommender.data import generate_ratings
from recommender.rbm import RBMRecommender

runner = CliRunner()
SMALL = ["-p", "n_hidden=6", "-p", "n_preference_hidden=4", "-p", "epochs=2", "-p",
         "batch_size=16", "--device", "cpu"]


def _csv(path: Path, ratings) -> Path:
    path.write_text("".join(f"{u},{i},{v:g},{t}\n" for u, i, v, t in zip(
        ratings.users, ratings.items, ratings.values, ratings.timestamps, strict=True)))
    return path


OFFLINE = generate_ratings(n_users=40, n_items=25, ratings_per_user=8, seed=4)
N = len(OFFLINE)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A model folder written by `recommender train`."""
    root = tmp_path_factory.mktemp("offline")
    ratings = _csv(root / "ratings.csv", OFFLINE)
    result = runner.invoke(app, ["train", "--ratings", str(ratings), "--out",
                                 str(root / "model"), *SMALL])
    assert result.exit_code == 0, result.output
    return root / "model"


def _invoke(*args: str, db_url: str, model_dir: Path):
    return runner.invoke(app, [*args, "--database-url", db_url, "--model-dir", str(model_dir)])


def _active(db_url: str) -> str | None:
    engine = store.make_engine(db_url)
    try:
        with store.make_session_factory(engine)() as session:
            return store.active_version(session)
    finally:
        engine.dispose()


def test_publish_list_and_activate(trained: Path, db_url: str, tmp_path: Path) -> None:
    models = tmp_path / "models"
    result = _invoke("models", "publish", str(trained), "--version", "offline-1",
                     db_url=db_url, model_dir=models)
    assert result.exit_code == 0, result.output
    assert f"published offline-1: 25 items, 40 users, {N} ratings; not active" in result.output
    assert sorted(p.name for p in (models / "offline-1").iterdir()) == [
        "metadata.json", "weights.safetensors"]
    assert _active(db_url) is None
    result = _invoke("models", "publish", str(trained), "--version", "offline-2", "--activate",
                     db_url=db_url, model_dir=models)
    assert result.exit_code == 0, result.output
    assert _active(db_url) == "offline-2"
    listing = runner.invoke(app, ["models", "list", "--database-url", db_url])
    assert listing.exit_code == 0, listing.output
    rows = listing.output.splitlines()[1:]
    assert [row.split()[:3] for row in rows] == [["*", "offline-2", "published"],
                                                 ["offline-1", "published", "25"]]
    result = _invoke("models", "activate", "offline-1", db_url=db_url, model_dir=models)
    assert result.exit_code == 0 and "model offline-1 active" in result.output
    assert _active(db_url) == "offline-1"
    engine = store.make_engine(db_url)
    try:
        with store.make_session_factory(engine)() as session:
            row = store.get_model(session, version="offline-1")
            assert row.job_id is None
            assert (row.n_users, row.n_items, row.n_ratings) == (40, 25, N)
            assert row.params["source"] == "published" and row.params["n_hidden"] == 6
    finally:
        engine.dispose()


def test_publish_refuses_what_cannot_be_served(trained: Path, db_url: str,
                                               tmp_path: Path) -> None:
    models = tmp_path / "models"
    assert _invoke("models", "publish", str(trained), "--version", "v1",
                   db_url=db_url, model_dir=models).exit_code == 0
    again = _invoke("models", "publish", str(trained), "--version", "v1",
                    db_url=db_url, model_dir=models)
    assert again.exit_code == 2 and "already exists" in again.output
    bad_name = _invoke("models", "publish", str(trained), "--version", "../v2",
                       db_url=db_url, model_dir=models)
    assert bad_name.exit_code == 2 and "Received: version='../v2'" in bad_name.output
    # An item map that lists an id twice: refused, and nothing is left behind.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "weights.safetensors").write_bytes((trained / "weights.safetensors").read_bytes())
    meta = json.loads((trained / "metadata.json").read_text())
    meta["item_ids"][1] = meta["item_ids"][0]
    (broken / "metadata.json").write_text(json.dumps(meta))
    result = _invoke("models", "publish", str(broken), "--version", "v3",
                     db_url=db_url, model_dir=models)
    assert result.exit_code == 2
    assert f"lists an id twice. Received: item_id={meta['item_ids'][0]!r}" in result.output
    assert not (models / "v3").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _invoke("models", "publish", str(empty), db_url=db_url, model_dir=models)
    assert result.exit_code == 2 and "is not a saved model" in result.output
    missing = _invoke("models", "activate", "nope", db_url=db_url, model_dir=models)
    assert missing.exit_code == 2 and "no model version 'nope'" in missing.output
    assert _active(db_url) is None
    listing = runner.invoke(app, ["models", "list", "--database-url", db_url])
    assert [row.split()[0] for row in listing.output.splitlines()[1:]] == ["v1"]


def test_activate_refuses_an_artifact_that_no_longer_loads(trained: Path, db_url: str,
                                                           tmp_path: Path) -> None:
    models = tmp_path / "models"
    for version in ("a1", "a2"):
        assert _invoke("models", "publish", str(trained), "--version", version, "--activate",
                       db_url=db_url, model_dir=models).exit_code == 0
    (models / "a1" / "weights.safetensors").write_bytes(b"not safetensors")
    result = _invoke("models", "activate", "a1", db_url=db_url, model_dir=models)
    assert result.exit_code == 2 and "cannot be served, nothing changed" in result.output
    assert _active(db_url) == "a2"


def test_train_init_from_continues_a_saved_model(trained: Path, tmp_path: Path) -> None:
    # More users and two new items; the hidden layout comes from the saved model (no -p).
    more = generate_ratings(n_users=50, n_items=27, ratings_per_user=8, seed=9)
    ratings = _csv(tmp_path / "more.csv", more)
    out = tmp_path / "warm"
    result = runner.invoke(app, ["train", "--ratings", str(ratings), "--out", str(out),
                                 "--init-from", str(trained), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    first = RBMRecommender.load(trained, device="cpu")
    warm = RBMRecommender.load(out, device="cpu")
    assert (warm.config.n_hidden, warm.config.n_preference_hidden) == (6, 4)
    assert warm.metadata["training"]["epochs_run"] == 5  # the warm-start default
    assert set(first.item_ids) < set(warm.item_ids)
    bad = runner.invoke(app, ["train", "--ratings", str(ratings), "--out", str(out),
                              "--init-from", str(trained), "-p", "n_hidden=9"])
    assert bad.exit_code == 2 and "same n_hidden" in bad.output


def test_init_from_takes_epochs_from_p_or_epochs(trained: Path, tmp_path: Path) -> None:
    ratings = _csv(tmp_path / "r.csv", OFFLINE)
    for extra, expected in ((["-p", "epochs=2"], 2), (["--epochs", "3"], 3)):
        out = tmp_path / f"warm{expected}"
        result = runner.invoke(app, ["train", "--ratings", str(ratings), "--out", str(out),
                                     "--init-from", str(trained), "--device", "cpu", *extra])
        assert result.exit_code == 0, result.output
        assert RBMRecommender.load(out, device="cpu").config.epochs == expected
