"""A new user's first hour: ``recommender demo`` gives items titles, reuses its store when run
again (``--fresh`` starts clean), and the README's curl examples name ids the demo has."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from recommender import store
from recommender.cli import app, demo_titles
from recommender.data import generate_ratings
from recommender.service import Settings, create_app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
TINY = ["--epochs", "2", "--n-hidden", "8", "--no-serve"]


def _models(directory: Path) -> int:
    engine = store.make_engine(f"sqlite:///{directory / 'recommender.db'}")
    try:
        with store.make_session_factory(engine)() as session:
            return session.scalar(select(func.count()).select_from(store.ModelVersion))
    finally:
        engine.dispose()


def test_demo_titles_its_items_reuses_its_store_and_starts_clean_with_fresh(tmp_path: Path):
    directory = tmp_path / "demo"
    first = runner.invoke(app, ["demo", "--dir", str(directory), *TINY])
    assert first.exit_code == 0, first.output
    assert "reusing" not in first.output and "active; held-out" in first.output
    assert _models(directory) == 1

    # Titles are served by the item route and inside recommendations.
    settings = Settings(
        database_url=f"sqlite:///{directory / 'recommender.db'}",
        model_dir=directory / "models",
        run_worker=False,
        torch_threads=None,
        scoring_threads=None,
        gc_freeze=False,
    )
    with TestClient(create_app(settings)) as client:
        item = client.get("/v1/items/i50").json()
        assert item["title"] == demo_titles(["i50"])["i50"] == "The Quiet Summer (2010)"
        body = client.get("/v1/users/u1/recommendations", params={"k": 5}).json()
        assert body["strategy"] == "rbm" and len(body["items"]) == 5
        assert all(entry["title"].startswith("The ") for entry in body["items"])
        for entry in body["items"]:
            assert 0 <= entry["score"] <= 1

    second = runner.invoke(app, ["demo", "--dir", str(directory), *TINY])
    assert second.exit_code == 0, second.output
    assert f"reusing the demo store in {directory}" in second.output
    assert "--fresh" in second.output and "held-out" not in second.output  # no retraining
    assert _models(directory) == 1

    (directory / "keep.txt").write_text("not the demo's")
    third = runner.invoke(app, ["demo", "--dir", str(directory), "--fresh", *TINY])
    assert third.exit_code == 0, third.output
    assert "--fresh: removed recommender.db" in third.output and "reusing" not in third.output
    assert _models(directory) == 1  # the old version went with the old database
    assert (directory / "keep.txt").exists()


def test_demo_titles_are_distinct() -> None:
    ids = [f"i{n}" for n in range(1000)]
    titles = demo_titles(ids)
    assert len(set(titles.values())) == 1000
    assert titles["i0"] == "The Silent Harbor (1960)"
    assert titles["i400"] == "The Silent Harbor 2 (2000)"


def test_readme_curl_examples_use_ids_the_demo_has() -> None:
    """Today's README used MovieLens ids (50, 172), which the demo's data lacks: every
    prediction came back null. The examples must name users and items the demo has."""
    readme = (REPO / "README.md").read_text()
    # The commands themselves: `curl ...` spans and curl lines of code blocks.
    curls = "\n".join(re.findall(r"`(curl [^`]*)`", readme))
    curls += "\n".join(line for line in readme.splitlines() if line.lstrip().startswith("curl"))
    users = set(re.findall(r"/v1/users/([^/?'\s]+)/(?:recommendations|predictions|ratings)", curls))
    items = set(re.findall(r'"item_id": "([^"]+)"', curls))
    items |= set(re.findall(r"/v1/items/([^/?'\s]+)", curls)) - {"popular", "new"}
    for listed in re.findall(r"item_ids=([^'&\s]+)", curls):
        items |= set(listed.split(","))
    users = {u for u in users if not u.startswith(("{", "$"))}  # templates, variables
    items = {i for i in items if not i.startswith(("{", "$"))}
    assert users and items
    demo = generate_ratings(seed=0)
    assert users <= set(demo.users), sorted(users - set(demo.users))
    assert items <= set(demo.items), sorted(items - set(demo.items))


def test_gitignore_covers_the_demo_store_and_sqlite_side_files() -> None:
    """A demo or test run leaves ``x.db-wal`` / ``x.db-shm`` beside an SQLite file in WAL mode."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["x.db", "x.db-wal", "x.db-shm", "recommender-demo/recommender.db", "y.sqlite-wal"]
    checked = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert sorted(checked.stdout.split()) == sorted(paths), checked.stdout + checked.stderr
