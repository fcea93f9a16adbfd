"""The migrations reach a non-editable install: a wheel carries every file of migrations/."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from recommender.store.migrate import REPO_ROOT, migrations_dir

CACHES = shutil.ignore_patterns("__pycache__", "*.pyc")


def test_a_checkout_uses_its_own_migrations_folder() -> None:
    assert migrations_dir() == REPO_ROOT / "migrations"


def test_the_wheel_installs_every_migration(tmp_path: Path) -> None:
    # Built from a copy: setuptools leaves build/ behind in the folder it builds.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source)
    for name in ("recommender", "migrations"):
        shutil.copytree(REPO_ROOT / name, source / name, ignore=CACHES)
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
    shipped = {
        name.split("/share/recommender/", 1)[1]
        for name in zipfile.ZipFile(wheel).namelist()
        if "/share/recommender/" in name
    }
    expected = {
        str(path.relative_to(REPO_ROOT))
        for path in (REPO_ROOT / "migrations").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert expected and shipped == expected
