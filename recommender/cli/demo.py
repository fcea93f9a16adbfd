"""``recommender demo``: a SQLite store, ratings (generated or MovieLens), one training run
and the server, in one folder."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recommender.cli.common import IMPORT_BATCH, load_settings
from recommender.cli.data import load_ratings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from recommender.data import Ratings


def demo(
    movielens: Annotated[
        Path | None,
        typer.Option(
            exists=True, file_okay=False, help="A MovieLens folder (u.data, ratings.csv/.dat)."
        ),
    ] = None,
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the demo database and models go.")
    ] = Path("./recommender-demo"),
    host: str = "127.0.0.1",
    port: int = 8000,
    epochs: Annotated[int | None, typer.Option(min=1, help="Training epochs.")] = None,
    n_hidden: Annotated[int | None, typer.Option(min=1, help="Hidden units.")] = None,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the server after training.")
    ] = True,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="Delete the demo's database and models in --dir first and start clean "
            "(without it, a second run reuses them).",
        ),
    ] = False,
) -> None:
    """SQLite store + ratings (generated, or MovieLens) + one training run + the server.

    Run again, it reuses the store in --dir (its ratings and its active model) and says so;
    --fresh starts clean.
    """
    from recommender.service.jobs import JobWorker
    from recommender.store import (
        active_version,
        count_ratings,
        enqueue_job,
        get_job,
        make_engine,
        make_session_factory,
        upgrade_database,
    )

    database = directory / "recommender.db"
    if fresh:
        _remove_demo_store(directory)
    reusing = database.exists()
    directory.mkdir(parents=True, exist_ok=True)
    admin_token = secrets.token_urlsafe(18)
    train_config: dict[str, Any] = {}
    if epochs is not None:
        train_config["epochs"] = epochs
    if n_hidden is not None:
        train_config["n_hidden"] = n_hidden
    settings = load_settings(
        database_url=f"sqlite:///{database.resolve()}",
        model_dir=(directory / "models").resolve(),
        admin_token=admin_token,
        train_config=train_config,
    )
    upgrade_database(settings.database_url)

    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    try:
        with sessions() as session:
            stored, version = count_ratings(session), active_version(session)
        if reusing and stored:
            typer.echo(
                f"reusing the demo store in {directory}: {stored} ratings, "
                + (f"model {version} active" if version else "no model yet")
                + " (`recommender demo --fresh` starts clean"
                + (", and loads --movielens" if movielens is not None else "")
                + ")"
            )
        else:
            ratings, titles = _demo_data(movielens)
            load_ratings(settings.database_url, ratings, titles, IMPORT_BATCH,
                         show_progress=True)
            version = None
        if version is None:
            with sessions() as session:
                job, _ = enqueue_job(session, params={})
                session.commit()
            with typer.progressbar(length=1, label="training") as bar:

                def progress(epoch: int, total: int, _logs: object) -> None:
                    bar.length = total
                    bar.update(1)

                JobWorker(sessions, settings, on_epoch=progress).run_once()
            with sessions() as session:
                finished = get_job(session, job_id=job.id)
                assert finished is not None
                if finished.status != "succeeded":
                    typer.echo(f"training failed: {finished.error}", err=True)
                    raise typer.Exit(1)
                metrics = finished.metrics or {}
                version = finished.model_version
            summary = ", ".join(f"{name}={value:.3f}" for name, value in metrics.items())
            typer.echo(f"model {version} active; held-out {summary}")
        with sessions() as session:
            user, item = _demo_examples(session)
    finally:
        engine.dispose()

    base = f"http://{host}:{port}"
    typer.echo(
        "\n".join(
            [
                "",
                f"admin token: {admin_token}",
                f"  curl '{base}/v1/users/{user}/recommendations?k=5'",
                f"  curl {base}/v1/items/{item}",
                f"  curl -X POST {base}/v1/admin/retrain -H 'Authorization: Bearer {admin_token}'",
                f"  docs: {base}/docs",
            ]
        )
    )
    if serve_after:
        import uvicorn

        from recommender.service import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def _remove_demo_store(directory: Path) -> None:
    """What ``demo`` writes in ``directory``: the SQLite file with its WAL and shared-memory
    files, and the model folder. Nothing else there is touched."""

    removed = []
    for name in ("recommender.db", "recommender.db-wal", "recommender.db-shm"):
        if (directory / name).exists():
            (directory / name).unlink()
            removed.append(name)
    if (directory / "models").is_dir():
        shutil.rmtree(directory / "models")
        removed.append("models/")
    if removed:
        typer.echo(f"--fresh: removed {', '.join(removed)} from {directory}")


def _demo_data(movielens: Path | None) -> tuple[Ratings, dict[str, str]]:
    """Ratings and item titles: a MovieLens folder's, or a generated set with made-up titles."""
    from recommender.data import generate_ratings, read_item_titles, read_ratings

    if movielens is not None:
        source = next(
            (
                movielens / name
                for name in ("u.data", "ratings.csv", "ratings.dat")
                if (movielens / name).exists()
            ),
            None,
        )
        if source is None:
            raise typer.BadParameter(
                f"no u.data, ratings.csv or ratings.dat in the folder. Received: {movielens}",
                param_hint="--movielens",
            )
        ratings = read_ratings(source)
        typer.echo(f"MovieLens: {len(ratings)} ratings from {source}")
        return ratings, read_item_titles(source)
    ratings = generate_ratings(seed=0)
    typer.echo(
        f"generated {len(ratings)} ratings ({ratings.n_users} users, {ratings.n_items} items)"
    )
    return ratings, demo_titles(sorted(set(ratings.items)))


_TITLE_WORDS = (
    ("Silent", "Crimson", "Last", "Hidden", "Golden", "Broken", "Distant", "Midnight", "Lost",
     "Electric", "Quiet", "Wild", "Frozen", "Secret", "Burning", "Paper", "Iron", "Blue",
     "Hollow", "Bright"),
    ("Harbor", "Garden", "Summer", "River", "Machine", "Kingdom", "Letter", "Station", "Forest",
     "Orchestra", "Mirror", "Voyage", "Island", "Window", "Circus", "Empire", "Lantern",
     "Mountain", "Signal", "Archive"),
)


def demo_titles(item_ids: list[str]) -> dict[str, str]:
    """Made-up, distinct titles for generated items (``i17`` -> ``The Midnight Kingdom
    (1977)``), so that the demo's items and recommendations read like a catalogue."""
    adjectives, nouns = _TITLE_WORDS
    titles = {}
    for position, item_id in enumerate(item_ids):
        digits = "".join(ch for ch in item_id if ch.isdigit())
        n = int(digits) if digits else position
        adjective = adjectives[n % len(adjectives)]
        noun = nouns[(n // len(adjectives)) % len(nouns)]
        cycle = n // (len(adjectives) * len(nouns))  # beyond 400 items: numbered sequels
        sequel = f" {cycle + 1}" if cycle else ""
        titles[item_id] = f"The {adjective} {noun}{sequel} ({1960 + (n * 7) % 60})"
    return titles


def _demo_examples(session: Session) -> tuple[str, str]:
    """A user and an item the store has, for the printed curl lines."""
    from sqlalchemy import select

    from recommender.store import Item, Rating

    user = session.scalar(select(Rating.user_id).order_by(Rating.user_id).limit(1))
    item = session.scalar(
        select(Item.item_id).where(Item.title.is_not(None)).order_by(Item.item_id).limit(1)
    )
    return user or "u0", item or "i0"
