"""The ``recommender`` command line: db upgrade, import (idempotent), worker, demo."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from recommender import store
from recommender.cli import app
from recommender.store import testing

runner = CliRunner()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema yet) on each dialect."""
    if request.param == "sqlite":
        yield testing.create_sqlite_database(tmp_path, migrate=False)
        return
    testing.require_postgres()
    url = testing.create_postgres_database(migrate=False)
    try:
        yield url
    finally:
        testing.drop_postgres_database(url)


def _count(url: str) -> tuple[int, dict[str, str]]:
    engine = store.make_engine(url)
    try:
        with store.make_session_factory(engine)() as session:
            return store.count_ratings(session), store.item_titles(
                session, item_ids=["1", "2", "3"]
            )
    finally:
        engine.dispose()


def test_db_upgrade_creates_the_schema(fresh_url: str) -> None:
    result = runner.invoke(app, ["db", "upgrade", "--database-url", fresh_url])
    assert result.exit_code == 0, result.output
    engine = store.make_engine(fresh_url)
    try:
        assert "ratings" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    assert runner.invoke(app, ["db", "upgrade", "--database-url", fresh_url]).exit_code == 0


def test_import_movielens_u_data_with_titles_twice(fresh_url: str, tmp_path: Path) -> None:
    data = tmp_path / "ml" / "u.data"
    data.parent.mkdir()
    data.write_text("1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t1\t4\t881250951\n")
    (data.parent / "u.item").write_text(
        "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "2|GoldenEye (1995)|01-Jan-1995||http://x|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n",
        encoding="latin-1",
    )
    for _ in range(2):  # re-importing changes nothing
        result = runner.invoke(app, ["import", str(data), "--database-url", fresh_url])
        assert result.exit_code == 0, result.output
        assert "imported 3 ratings and 2 item titles" in result.output
        assert _count(fresh_url) == (3, {"1": "Toy Story (1995)", "2": "GoldenEye (1995)"})


def test_import_plain_csv(fresh_url: str, tmp_path: Path) -> None:
    data = tmp_path / "mine.csv"
    data.write_text("user,item,rating\nalice,1,4\nbob,2,2.5\nalice,3,5\n")
    result = runner.invoke(
        app, ["import", str(data), "--database-url", fresh_url, "--batch-size", "2"]
    )
    assert result.exit_code == 0, result.output
    assert _count(fresh_url) == (3, {})


def test_import_of_a_missing_file_names_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["import", str(tmp_path / "nope.csv")])
    assert result.exit_code != 0
    assert "nope.csv" in result.output


def _one_line_error(result, path: Path, line: int, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    assert f"error: {path}:{line}: {message}" in result.output
    assert "Traceback" not in result.output
    assert "nothing was imported" in result.output


@pytest.mark.parametrize(("bad", "message"), [
    ("u9,i1,9,5", "rating must be in [1, 5]. Received: rating=9 (user='u9', item='i1')"),
    ("u9,i1,great,5", "rating must be a number. Received: rating='great'"),
    ("u9,i1,4,5,extra", "expected 4 fields"),
])
def test_import_refuses_a_bad_row_in_the_middle_and_imports_nothing(
    fresh_url: str, tmp_path: Path, bad: str, message: str
) -> None:
    """A large file with one bad row half way: file:line on one line, no traceback, and not
    one rating of the file stored (also none of the rows before it)."""
    rows = [f"u{n % 101},i{n % 37},{1 + n % 5},{n}" for n in range(4000)]
    rows[2500] = bad
    data = tmp_path / "big.csv"
    data.write_text("user,item,rating,timestamp\n" + "\n".join(rows) + "\n")
    assert runner.invoke(app, ["db", "upgrade", "--database-url", fresh_url]).exit_code == 0
    result = runner.invoke(
        app, ["import", str(data), "--database-url", fresh_url, "--batch-size", "500"]
    )
    _one_line_error(result, data, 2502, message)  # line 1 is the header
    assert _count(fresh_url) == (0, {})


def test_import_of_an_empty_file_is_a_clear_error(fresh_url: str, tmp_path: Path) -> None:
    for content in ("", "user,item,rating\n"):
        data = tmp_path / "empty.csv"
        data.write_text(content)
        result = runner.invoke(app, ["import", str(data), "--database-url", fresh_url])
        assert result.exit_code == 2, result.output
        assert f"error: {data}: the file has no ratings" in result.output
        assert "Traceback" not in result.output


def test_import_keeps_the_latest_rating_of_a_duplicated_pair(
    fresh_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "dups.csv"
    data.write_text("u,1,5,300\nu,1,1,100\nu,2,2,50\nu,2,4,50\nv,1,3,7\n")
    for _ in range(2):  # and a second import changes nothing
        result = runner.invoke(
            app, ["import", str(data), "--database-url", fresh_url, "--batch-size", "2"]
        )
        assert result.exit_code == 0, result.output
        assert "imported 3 ratings" in result.output
    engine = store.make_engine(fresh_url)
    try:
        with store.make_session_factory(engine)() as session:
            assert store.user_ratings(session, user_id="u") == {"1": 5.0, "2": 4.0}
            assert store.count_ratings(session) == 3
    finally:
        engine.dispose()


def test_worker_once_runs_the_queued_job(fresh_url: str, tmp_path: Path, monkeypatch) -> None:
    from recommender.data import generate_ratings

    store.upgrade_database(fresh_url)
    ratings = generate_ratings(n_users=30, n_items=20, ratings_per_user=8, seed=1)
    engine = store.make_engine(fresh_url)
    try:
        with store.make_session_factory(engine)() as session:
            store.upsert_ratings(
                session,
                ratings=store.rating_rows(ratings),
            )
            job, _ = store.enqueue_job(
                session, params={"config": {"n_hidden": 8, "epochs": 2, "device": "cpu"}}
            )
            session.commit()
        monkeypatch.setenv("RECOMMENDER_MODEL_DIR", str(tmp_path / "models"))
        result = runner.invoke(app, ["worker", "--once", "--database-url", fresh_url])
        assert result.exit_code == 0, result.output
        assert "ran one job" in result.output
        with store.make_session_factory(engine)() as session:
            finished = store.get_job(session, job_id=job.id)
            assert finished.status == "succeeded", finished.error
            assert store.active_version(session) == finished.model_version
        assert (tmp_path / "models" / finished.model_version).is_dir()
    finally:
        engine.dispose()


def test_demo_trains_and_prints_the_admin_token(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["demo", "--dir", str(tmp_path / "demo"), "--epochs", "2", "--n-hidden", "8", "--no-serve"],
    )
    assert result.exit_code == 0, result.output
    assert "admin token: " in result.output
    assert "active; held-out" in result.output
    assert (tmp_path / "demo" / "recommender.db").exists()
    assert any((tmp_path / "demo" / "models").iterdir())


def test_python_dash_m_recommender_shows_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "recommender", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    for command in ("serve", "worker", "import", "demo", "db"):
        assert command in result.stdout


# Every command, in `recommender --help` order, with its arguments and options: the surface that
# the split of cli.py into the recommender/cli package kept, and that a user's scripts rely on.
COMMANDS = {
    "serve": ["--host", "--port", "--workers", "--migrate/--no-migrate", "--database-url"],
    "worker": ["--database-url", "--once/--no-once"],
    "import": ["PATH", "--database-url", "--batch-size"],
    "demo": ["--movielens", "--dir", "--host", "--port", "--epochs", "--n-hidden",
             "--serve/--no-serve", "--fresh"],
    "evaluate": ["--ratings", "--k", "--seed", "--json", "--param/-p", "--epochs", "--device",
                 "--cold-start"],
    "train": ["--ratings", "--out", "--param/-p", "--epochs", "--device", "--distributed",
              "--init-from"],
    "db upgrade": ["--database-url", "--revision"],
    "models publish": ["DIRECTORY", "--activate", "--version", "--database-url", "--model-dir"],
    "models list": ["--database-url"],
    "models activate": ["VERSION", "--database-url", "--model-dir"],
}


def _commands(command, prefix: str = "") -> dict[str, list[str]]:
    if hasattr(command, "commands"):  # a group: its commands in --help order
        found = {}
        for name in command.list_commands(None):
            found.update(_commands(command.commands[name], f"{prefix} {name}".strip()))
        return found
    return {prefix: [p.name.upper() if p.param_type_name == "argument"
                     else "/".join(p.opts + p.secondary_opts) for p in command.params]}


def test_every_command_and_option_in_help_order() -> None:
    import typer.main

    found = _commands(typer.main.get_command(app))
    assert list(found) == list(COMMANDS)
    assert found == COMMANDS


def test_the_cli_imports_neither_torch_nor_the_service_until_a_command_runs() -> None:
    # `recommender --help` stays fast: the commands import what they need when they run.
    code = ("import sys, recommender.cli; print(sorted(m for m in sys.modules if m in "
            "('torch', 'sqlalchemy', 'uvicorn', 'pandas', 'recommender.service')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_a_postgresql_url_without_the_driver_is_a_one_line_error(tmp_path: Path) -> None:
    # The console script (recommender.cli:main) in a child whose psycopg cannot be imported.
    path = tmp_path / "ratings.csv"
    path.write_text("user_id,item_id,rating,timestamp\n1,2,4,0\n")
    code = ("import sys; sys.modules['psycopg'] = None; from recommender.cli import main; "
            "sys.argv = ['recommender', 'import', sys.argv[1], '--database-url', "
            "'postgresql+psycopg://postgres@127.0.0.1:5432/test']; main()")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 2
    assert done.stderr == ("error: a postgresql:// database needs the psycopg driver, which is "
                           "not installed: pip install 'recommender[postgres]'\n")
