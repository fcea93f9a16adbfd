"""The schema comes only from the Alembic migrations, and matches the ORM models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from recommender.store import Base, upgrade_database


def test_upgrade_is_idempotent_and_creates_every_table(db_url: str, engine: Engine) -> None:
    upgrade_database(db_url)  # already at head: nothing to do, no error
    tables = set(inspect(engine).get_table_names())
    assert {"ratings", "items", "training_jobs", "model_versions", "active_model"} <= tables
    assert "alembic_version" in tables


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
