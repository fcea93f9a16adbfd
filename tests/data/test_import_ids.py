"""`recommender import` refuses the ids the HTTP API refuses (validation.Id: 1-128 characters,
no NUL, no lone surrogate, no '/'), with file:line, and stores nothing; on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from recommender import store
from recommender.cli import app
from recommender.data import read_ratings
from recommender.store import testing

runner = CliRunner()


def _file(tmp_path: Path, bad: str, at: int = 2500) -> Path:
    rows = [f"u{n % 101},i{n % 37},{1 + n % 5},{n}" for n in range(4000)]
    rows[at] = bad
    path = tmp_path / "ids.csv"
    path.write_text("user,item,rating,timestamp\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(("bad", "message"), [
    ("u9,https://example.org/item/1,4,5",
     "item id: ids must not contain '/'. Received: item='https://example.org/item/1'"),
    ("a/b,i1,4,5", "user id: ids must not contain '/'. Received: user='a/b'"),
    ("u9," + "x" * 129 + ",4,5", "item id: ids must be 1-128 characters, got 129. Received: "
     "item='" + "x" * 40 + "... (129 characters)'"),
    ("u\x009,i1,4,5", "user id: must not contain a NUL character (found at position 1). "
     "Received: user='u\\x009'"),
])
def test_read_ratings_refuses_an_id_the_api_refuses(tmp_path: Path, bad: str, message: str):
    path = _file(tmp_path, bad)
    with pytest.raises(ValueError) as caught:
        read_ratings(path, rating_min=1, rating_max=5)
    assert str(caught.value) == f"{path}:2502: {message}"  # line 1 is the header


def test_the_earliest_bad_row_is_named_whichever_rule_it_breaks(tmp_path: Path):
    rows = [f"u{n},i{n % 7},3" for n in range(100)]
    rows[10] = "u/1,i1,3"  # an id problem first
    rows[20] = "u2,i1,9"  # then a rating out of the scale
    path = tmp_path / "two.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"two.csv:11: user id: ids must not contain '/'"):
        read_ratings(path, rating_min=1, rating_max=5)
    rows[10], rows[30] = "u1,i1,3", "u/1,i1,3"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"two.csv:21: rating must be in \[1, 5\]"):
        read_ratings(path, rating_min=1, rating_max=5)


def test_ids_at_the_limits_are_read(tmp_path: Path):
    path = tmp_path / "ok.csv"
    path.write_text(f"{'u' * 128},i:1?x=%2F,4\n\u00e9,\u2603 b,5\n")
    ratings = read_ratings(path, rating_min=1, rating_max=5)
    assert ratings.users.tolist() == ["u" * 128, "\u00e9"]
    assert ratings.items.tolist() == ["i:1?x=%2F", "\u2603 b"]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        yield testing.create_sqlite_database(tmp_path, migrate=True)
        return
    testing.require_postgres()
    url = testing.create_postgres_database(migrate=True)
    try:
        yield url
    finally:
        testing.drop_postgres_database(url)


def _count(url: str) -> int:
    engine = store.make_engine(url)
    try:
        with store.make_session_factory(engine)() as session:
            return store.count_ratings(session)
    finally:
        engine.dispose()


@pytest.mark.parametrize("bad", ["u9,https://example.org/item/1,4,5",
                                 "u9," + "y" * 129 + ",4,5"])
def test_import_refuses_a_bad_id_with_file_line_and_stores_nothing(
    empty_store: str, tmp_path: Path, bad: str
):
    path = _file(tmp_path, bad)
    result = runner.invoke(app, ["import", str(path), "--database-url", empty_store,
                                 "--batch-size", "500"])
    assert result.exit_code == 2, result.output
    assert f"error: {path}:2502: item id: ids must" in result.output
    assert "nothing was imported" in result.output
    assert "Traceback" not in result.output
    assert _count(empty_store) == 0
    # The same file without the bad row imports (and the store takes it).
    path.write_text(path.read_text().replace(bad, "u9,i1,4,5"))
    result = runner.invoke(app, ["import", str(path), "--database-url", empty_store])
    assert result.exit_code == 0, result.output
    assert _count(empty_store) > 0
