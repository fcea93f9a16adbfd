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


def test_sqlite_ratings_are_clustered_and_migrations_keep_every_rating(db_url: str, tmp_path):
    """0001 -> head -> 0001 on a fresh database of the same kind, with ratings in it."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from recommender.store import testing
    from recommender.store.migrate import alembic_config

    sqlite = db_url.startswith("sqlite")
    url = (
        testing.create_sqlite_database(tmp_path, migrate=False)
        if sqlite
        else testing.create_postgres_database("recommender_migrate", migrate=False)
    )
    config = alembic_config(url)
    rows = [("u1", "a", 4.0, 10), ("u1", "b", 2.5, 11), ("u2", "a", 1.0, 12)]
    engine = create_engine(url)

    def stored() -> list[tuple]:
        with engine.connect() as connection:
            query = "SELECT user_id, item_id, value, timestamp FROM ratings ORDER BY 1, 2"
            return [tuple(row) for row in connection.execute(text(query))]

    def clustered() -> bool:
        with engine.connect() as connection:
            sql = connection.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'ratings'")
            ).scalar_one()
        return "WITHOUT ROWID" in sql.upper()

    try:
        command.upgrade(config, "0001")
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO ratings VALUES (:u, :i, :v, :t)"),
                [dict(zip("uivt", row, strict=True)) for row in rows],
            )
        command.upgrade(config, "head")
        assert stored() == rows
        if sqlite:
            assert clustered()
            indexes = {index["name"] for index in inspect(engine).get_indexes("ratings")}
            assert "ix_ratings_item_id" in indexes
        command.downgrade(config, "0001")
        assert stored() == rows
        if sqlite:
            assert not clustered()
    finally:
        engine.dispose()
        if not sqlite:
            testing.drop_postgres_database(url)
