"""Shared fixtures: seeds, the MovieLens folder when ../shared/data has it, and the two
databases (SQLite file, PostgreSQL) every store and service test runs on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MOVIELENS_DIR = Path(
    os.environ.get("MOVIELENS_DIR", REPO.parent / "shared" / "data" / "movielens-100k")
)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    if not (MOVIELENS_DIR / "u.data").exists():
        pytest.skip(f"MovieLens-100k not found at {MOVIELENS_DIR} (set MOVIELENS_DIR)")
    return MOVIELENS_DIR


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def database_url(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[str]:
    """A migrated database for the session: a SQLite file, or a throw-away PostgreSQL database
    (skipped when the server is unreachable, unless RECOMMENDER_REQUIRE_POSTGRES=1)."""
    from recommender.store import testing

    if request.param == "sqlite":
        yield testing.create_sqlite_database(tmp_path_factory.mktemp("sqlite"))
        return
    testing.require_postgres()
    url = testing.create_postgres_database()
    try:
        yield url
    finally:
        testing.drop_postgres_database(url)


@pytest.fixture
def db_url(database_url: str) -> str:
    """The session's database, emptied before the test."""
    from recommender.store import testing

    testing.clear_database(database_url)
    return database_url
