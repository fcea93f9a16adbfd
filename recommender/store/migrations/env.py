"""Alembic environment: the URL comes from the caller or RECOMMENDER_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import pool

from recommender.store.engine import DEFAULT_DATABASE_URL, make_engine
from recommender.store.models import Base

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    return (
        config.attributes.get("database_url")
        or os.environ.get("RECOMMENDER_DATABASE_URL")
        or DEFAULT_DATABASE_URL
    )


def run_migrations_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs via copies
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
