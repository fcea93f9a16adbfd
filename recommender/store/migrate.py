"""Run the Alembic migrations in ``migrations/`` programmatically (the only way the schema
is made: ``recommender db upgrade``, tests, and the demo all come through here)."""

from __future__ import annotations

import site
import sysconfig
from pathlib import Path

from alembic import command
from alembic.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]


def migrations_dir() -> Path:
    """Where the migrations are: the checkout's ``migrations/`` (development, editable
    installs, the Docker image), else the copy a wheel installs under
    ``<prefix>/share/recommender/migrations`` (see ``pyproject.toml``)."""
    candidates = [
        REPO_ROOT / "migrations",
        Path(sysconfig.get_path("data")) / "share" / "recommender" / "migrations",
        Path(site.getuserbase()) / "share" / "recommender" / "migrations",
    ]
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"the Alembic migrations are missing. Searched: {searched}")


def alembic_config(database_url: str) -> Config:
    """An Alembic config for ``database_url`` that works from any working directory."""
    ini = REPO_ROOT / "alembic.ini"
    config = Config(str(ini)) if ini.exists() else Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # Passed as an attribute, not an ini option: URLs may contain '%' (configparser syntax).
    config.attributes["database_url"] = database_url
    return config


def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Bring the schema of ``database_url`` up to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(database_url), revision)
