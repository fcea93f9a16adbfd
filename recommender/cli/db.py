"""``recommender db``: the database schema (Alembic migrations)."""

from __future__ import annotations

from typing import Annotated

import typer

from recommender.cli.common import DatabaseOption, load_settings, redact

db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(
    database_url: DatabaseOption = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Create or migrate the schema (idempotent)."""
    from recommender.store import upgrade_database

    url = load_settings(database_url=database_url).database_url
    upgrade_database(url, revision)
    typer.echo(f"database at revision {revision}: {redact(url)}")
