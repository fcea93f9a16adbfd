"""The ``recommender`` command line: one Typer app (``recommender --help``).

serve, worker, db upgrade, import, demo, models (publish / list / activate), and the
engine's train / evaluate commands, one module each (``server``, ``db``, ``data``, ``demo``,
``models``, ``engine``; ``common`` holds what they share).
Configuration comes from the ``RECOMMENDER_*`` environment variables (see
:class:`recommender.service.Settings`); options given here win.
"""

from __future__ import annotations

import typer

from recommender.cli import data, db, demo, engine, models, server
from recommender.cli.data import import_ratings
from recommender.cli.demo import demo_titles

# The recommender, SQLAlchemy, uvicorn and tqdm imports stay inside the commands: they load
# torch and the service, and `recommender --help` takes 0.29 s with them lazy against 8.5 s
# for `import recommender.service.app` (measured on the 2-core dev machine, /usr/bin/time).

app = typer.Typer(
    name="recommender",
    help="RBM recommender: HTTP service, training worker, data import, demo.",
    no_args_is_help=True,
    add_completion=False,
)
# `recommender --help` lists the commands in this order, then the groups.
app.command()(server.serve)
app.command()(server.worker)
app.command("import")(data.import_ratings)
app.command()(demo.demo)
app.command()(engine.evaluate)
app.command()(engine.train)
app.add_typer(db.db_app, name="db")
app.add_typer(models.models_app, name="models")


def main() -> None:
    """The ``recommender`` console script: :data:`app`, with a missing database driver
    (a ``postgresql://`` URL without the ``postgres`` extra) as a one-line error, exit 2,
    instead of a traceback."""
    try:
        app(prog_name="recommender")
    except ModuleNotFoundError as exc:
        if exc.name != "psycopg":
            raise
        typer.echo(f"error: {exc}", err=True)  # common.fail's message, outside click's loop
        raise SystemExit(2) from None


__all__ = ["app", "demo_titles", "import_ratings", "main"]
