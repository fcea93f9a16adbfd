"""The package's dependencies (issue 11): a lean base install, a ``postgres`` and a
``notebooks`` extra, ``dev`` with both, and the Docker image's lock file with the postgres extra.
Read from pyproject.toml, requirements.lock and the notebooks' own import lines."""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from recommender import store

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
INSTALL_HINT = "pip install 'recommender[postgres]'"


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(line).name) for line in requirements}


def _locked() -> dict[str, str]:
    """``{name: version}`` of requirements.lock."""
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_the_base_install_has_neither_the_driver_nor_the_notebook_tools() -> None:
    base = _names(PROJECT["dependencies"])
    assert "psycopg" not in base
    assert not base & {"jupyterlab", "ipykernel", "matplotlib", "nbclient", "scikit-learn"}
    assert not base & {"httpx", "scipy"}  # the runtime imports neither


def test_the_extras_and_dev_holds_both() -> None:
    assert _names(EXTRAS["postgres"]) == {"psycopg"}
    assert Requirement(EXTRAS["postgres"][0]).extras == {"binary"}  # libpq comes with it
    assert {"jupyterlab", "ipykernel", "matplotlib", "nbclient"} <= _names(EXTRAS["notebooks"])
    itself = [Requirement(line) for line in EXTRAS["dev"]
              if Requirement(line).name == PROJECT["name"]]
    assert [r.extras for r in itself] == [{"postgres", "notebooks"}]


def test_the_lock_file_is_the_base_install_with_the_postgres_extra() -> None:
    pins = _locked()
    wanted = (_names(PROJECT["dependencies"]) | _names(EXTRAS["postgres"])) - {"torch"}
    assert wanted - pins.keys() == set()
    assert {"psycopg", "psycopg-binary"} <= pins.keys()
    # torch comes from the PyTorch index the Dockerfile names; the notebook tools stay out.
    assert not pins.keys() & {"torch", "jupyterlab", "ipykernel", "matplotlib", "httpx"}
    header = (REPO / "requirements.lock").read_text().splitlines()[1]
    assert "--extra postgres" in header and "--excludes /dev/stdin" in header


def _notebook_imports() -> set[str]:
    """Top-level modules the notebooks import, beyond the standard library and this package."""
    modules = set()
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            # Cell magics and shell lines are not Python.
            source = "\n".join(line for line in "".join(cell["source"]).splitlines()
                               if not line.lstrip().startswith(("%", "!")))
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"recommender"}


def _closure(names: set[str]) -> set[str]:
    """``names`` and every installed distribution they require, transitively (extras aside)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


def test_the_notebooks_extra_covers_what_the_notebooks_import() -> None:
    imports = _notebook_imports()
    assert {"matplotlib", "numpy", "torch"} <= imports  # the reader sees the notebooks
    providers = {module: {canonicalize_name(d) for d in dists}
                 for module, dists in metadata.packages_distributions().items()}
    unknown = {module for module in imports if module not in providers}
    if unknown:
        pytest.skip(f"not installed here, cannot map to a distribution: {sorted(unknown)}")
    installed = _closure(_names(PROJECT["dependencies"]) | _names(EXTRAS["notebooks"]))
    uncovered = {module for module in imports if not providers[module] & installed}
    assert uncovered == set()


def test_a_postgresql_url_without_psycopg_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now fails
    for url in ("postgresql://postgres@127.0.0.1:5432/test",
                "postgresql+psycopg://postgres@127.0.0.1:5432/test"):
        with pytest.raises(ModuleNotFoundError, match=re.escape(INSTALL_HINT)):
            store.make_engine(url)


def test_sqlite_needs_no_psycopg(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    engine = store.make_engine(f"sqlite:///{tmp_path / 'lean.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        engine.dispose()
