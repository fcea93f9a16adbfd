"""Throw-away databases for tests and benchmarks: a temp SQLite file or a fresh PostgreSQL
database on a server (created with a random name, migrated, dropped afterwards)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from .migrate import upgrade_database

# The server CI provides; override with RECOMMENDER_TEST_POSTGRES_URL.
DEFAULT_POSTGRES_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_server_url() -> str:
    return os.environ.get("RECOMMENDER_TEST_POSTGRES_URL", DEFAULT_POSTGRES_SERVER_URL)


def postgres_unreachable_reason(server_url: str | None = None) -> str | None:
    """``None`` when the PostgreSQL server answers, else why not."""
    engine = create_engine(server_url or postgres_server_url(), connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        engine.dispose()


def create_postgres_database(prefix: str = "recommender_test", *, migrate: bool = True) -> str:
    """Create ``<prefix>_<random>`` on the test server; returns its URL."""
    server = make_url(postgres_server_url())
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    url = server.set(database=name).render_as_string(hide_password=False)
    if migrate:
        upgrade_database(url)
    return url


def drop_postgres_database(url: str) -> None:
    """Drop the database at ``url``, disconnecting whoever is still connected."""
    name = make_url(url).database
    admin = create_engine(postgres_server_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def create_sqlite_database(directory: Path, *, migrate: bool = True) -> str:
    """A fresh SQLite file in ``directory``; returns its URL."""
    url = f"sqlite:///{directory / f'recommender_{secrets.token_hex(4)}.db'}"
    if migrate:
        upgrade_database(url)
    return url


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL is unreachable, or fail it when
    ``RECOMMENDER_REQUIRE_POSTGRES=1`` (CI) says the server must be there."""
    import pytest

    reason = postgres_unreachable_reason()
    if reason is None:
        return
    message = f"PostgreSQL unreachable at {postgres_server_url()}: {reason}"
    if os.environ.get("RECOMMENDER_REQUIRE_POSTGRES") == "1":
        pytest.fail(message + " (RECOMMENDER_REQUIRE_POSTGRES=1)", pytrace=False)
    pytest.skip(message)


TABLES_CHILD_FIRST = ("active_model", "model_versions", "training_jobs", "items", "ratings")


def clear_database(url: str) -> None:
    """Empty every table (between tests; the schema stays)."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(
                    text(f"TRUNCATE {', '.join(TABLES_CHILD_FIRST)} RESTART IDENTITY CASCADE")
                )
            else:
                for table in TABLES_CHILD_FIRST:
                    connection.execute(text(f"DELETE FROM {table}"))
    finally:
        engine.dispose()
