"""Run the Alembic migrations programmatically (the only way the schema is made:
``recommender db upgrade``, tests, and the demo all come through here).

The migrations are package data, ``recommender/store/migrations`` (``env.py``, the template,
``versions/``): a checkout, an editable install and a wheel all read the same files, found
with :mod:`importlib.resources`. ``alembic.ini`` at the top of a checkout points there too,
so the ``alembic`` command works from a checkout.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config


def migrations_dir() -> Path:
    """The folder of the migrations inside the installed package."""
    folder = resources.files(__package__) / "migrations"
    # Alembic reads a folder on disk; pip always installs packages as files (never zipped).
    if not isinstance(folder, Path) or not (folder / "env.py").is_file():
        raise FileNotFoundError(
            f"the Alembic migrations are missing from the package. Searched: {folder}"
        )
    return folder


def alembic_config(database_url: str) -> Config:
    """An Alembic config for ``database_url`` that works from any working directory."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")  # alembic >= 1.16 warns without it
    # Passed as an attribute, not an ini option: URLs may contain '%' (configparser syntax).
    config.attributes["database_url"] = database_url
    return config


def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Bring the schema of ``database_url`` up to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(database_url), revision)
