"""``recommender import``: ratings (and the titles next to them) from a file into the store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recommender.cli.common import (
    IMPORT_BATCH,
    IMPORT_CHUNK,
    DatabaseOption,
    fail,
    load_settings,
)

if TYPE_CHECKING:
    from recommender.data import Ratings


def import_ratings(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="u.data, ratings.csv, ratings.dat or a CSV user,item,rating[,timestamp].",
        ),
    ],
    database_url: DatabaseOption = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Ratings per chunk written (one transaction in all).")
    ] = IMPORT_CHUNK,
) -> None:
    """Load ratings (and the titles next to them) into the store; re-importing is harmless.

    The whole file is checked before anything is written (a bad row is refused with its
    file:line) and written in one transaction: all of it or nothing. A (user, item) rated
    twice keeps the rating with the latest timestamp, in the file and against the store.
    """
    from recommender.data import read_item_titles, read_ratings
    from recommender.store import upgrade_database

    settings = load_settings(database_url=database_url)
    try:
        ratings = read_ratings(path, rating_min=settings.rating_min,
                               rating_max=settings.rating_max)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        fail("nothing was imported")
    upgrade_database(settings.database_url)
    titles = read_item_titles(path)
    written, items = load_ratings(settings.database_url, ratings, titles, batch_size,
                                  show_progress=True)
    typer.echo(f"imported {written} ratings and {items} item titles from {path}")


def load_ratings(
    database_url: str,
    ratings: Ratings,
    titles: dict[str, str],
    batch_size: int,
    *,
    show_progress: bool,
) -> tuple[int, int]:
    """Write ``ratings`` in one transaction (chunks of ``batch_size``: COPY on PostgreSQL,
    JSON batches on SQLite, :func:`recommender.store.bulk.import_ratings`), then ``titles``.

    Returns (distinct (user, item) pairs written, titles written).
    """
    from tqdm.auto import tqdm

    from recommender.store import (
        ItemRow,
        make_engine,
        make_session_factory,
        refresh_statistics,
        upsert_items,
    )
    from recommender.store.bulk import import_ratings as bulk_import

    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    try:
        with tqdm(total=len(ratings), unit="rating", unit_scale=True, desc="import",
                  disable=not show_progress) as bar:
            written = bulk_import(engine, ratings, progress=bar.update, chunk=batch_size)
        rows = [ItemRow(item_id, title) for item_id, title in titles.items()]
        for start in range(0, len(rows), IMPORT_BATCH):
            with sessions() as session:
                upsert_items(session, items=rows[start : start + IMPORT_BATCH])
                session.commit()
        with sessions() as session:
            refresh_statistics(session)
            session.commit()
    finally:
        engine.dispose()
    return written, len(titles)
