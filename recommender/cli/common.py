"""What the commands share: settings, logging, the --database-url option, error exits, a
session on a store."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:  # the real imports stay inside the functions (see recommender/cli/__init__)
    from sqlalchemy.orm import Session

    from recommender.service import Settings

IMPORT_BATCH = 10_000  # ratings per upsert statement (the HTTP batch limit, too)
IMPORT_CHUNK = 500_000  # rows per COPY / JSON chunk of a file import (a progress step)

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database-url", help="Overrides RECOMMENDER_DATABASE_URL.", show_default=False),
]


def load_settings(**changes: Any) -> Settings:
    """The RECOMMENDER_* settings, with the options given on the command line (not None)."""
    from recommender.service import Settings

    changes = {name: value for name, value in changes.items() if value is not None}
    return Settings(**changes)


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with status 2 (bad input)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def redact(url: str) -> str:
    """The database URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def store_session(database_url: str) -> Iterator[Session]:
    """One session on the store at ``database_url``; its engine is disposed at the end."""
    from recommender.store import make_engine, make_session_factory

    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()
