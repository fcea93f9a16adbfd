"""The migrations are package data: a wheel carries every file of recommender/store/migrations,
and the package finds them with importlib.resources (no checkout needed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import recommender
from recommender.store.migrate import alembic_config, migrations_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO_ROOT / "recommender" / "store" / "migrations"
CACHES = shutil.ignore_patterns("__pycache__", "*.pyc")


def test_the_package_reads_its_own_migrations() -> None:
    assert migrations_dir() == Path(recommender.__file__).parent / "store" / "migrations"
    assert alembic_config("sqlite://").get_main_option("script_location") == str(
        migrations_dir()
    )


def test_alembic_ini_of_a_checkout_points_at_the_package_migrations() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(Config(str(REPO_ROOT / "alembic.ini")))
    assert Path(script.dir) == MIGRATIONS
    assert script.get_current_head() == ScriptDirectory.from_config(
        alembic_config("sqlite://")
    ).get_current_head()


def test_the_wheel_installs_every_migration(tmp_path: Path) -> None:
    # Built from a copy: setuptools leaves build/ behind in the folder it builds.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source)
    shutil.copytree(REPO_ROOT / "recommender", source / "recommender", ignore=CACHES)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("recommender-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {
        name.split("recommender/store/migrations/", 1)[1]
        for name in names
        if name.startswith("recommender/store/migrations/")
    }
    expected = {
        str(path.relative_to(MIGRATIONS))
        for path in MIGRATIONS.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert {"env.py", "script.py.mako", "versions/0001_initial.py"} <= expected
    assert shipped == expected
    # Nothing outside the package any more (the deprecated data-files copy is gone).
    assert not [name for name in names if ".data/" in name]
