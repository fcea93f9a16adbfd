"""Every store test runs on SQLite (a temp file) and on PostgreSQL (a database made for this
session, dropped at the end). Tables are emptied before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from recommender.store import make_engine, make_session_factory, testing


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def database_url(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[str]:
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
    testing.clear_database(database_url)
    return database_url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url, busy_timeout_s=5)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session:
        yield session
