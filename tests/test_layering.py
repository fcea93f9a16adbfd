"""The import contract of ``recommender`` (issue 11), read from the source with ``ast``: every
``import`` and ``from ... import`` anywhere in a module (top level, inside functions, under
``TYPE_CHECKING``) is an edge from its package to the package it names.

Layers, lowest first: ``core`` (the deep-learning core) <- ``data`` <- ``rbm`` <- ``evaluation``;
``store`` (SQL) beside them; ``service`` (HTTP) on top, and only the CLI above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "recommender"


def _package(module: str) -> str:
    """``recommender.rbm.model`` -> ``rbm``; ``recommender.cli`` -> ``cli``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _edges() -> set[tuple[str, str, str]]:
    """``(importing package, imported package, file)`` for every import of ``recommender``."""
    edges = set()
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT.parent).with_suffix("")
        module = ".".join(relative.parts).removesuffix(".__init__")
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against this module's package
                    base = module.split(".")
                    base = base[: len(base) - node.level + (1 if is_package else 0)]
                    prefix = ".".join(base)
                    target = f"{prefix}.{node.module}" if node.module else prefix
                    # `from . import x` may name a submodule: x is the target's child
                    targets = [target] if node.module else [f"{target}.{a.name}" for a in
                                                             node.names]
                else:
                    targets = [node.module or ""]
            else:
                continue
            for target in targets:
                if target == "recommender" or target.startswith("recommender."):
                    if isinstance(node, ast.ImportFrom) and target == "recommender":
                        targets_here = [f"recommender.{a.name}" for a in node.names]
                    else:
                        targets_here = [target]
                    for name in targets_here:
                        src, dst = _package(module), _package(name)
                        if src != dst:
                            edges.add((src, dst, str(path.relative_to(ROOT.parent))))
    return edges


EDGES = _edges()


def _from(package: str) -> set[tuple[str, str]]:
    return {(dst, file) for src, dst, file in EDGES if src == package}


def test_the_reader_sees_imports() -> None:
    # Guards the test itself: edges that certainly exist are found.
    assert ("service", "store") in {(s, d) for s, d, _ in EDGES}
    assert ("rbm", "core") in {(s, d) for s, d, _ in EDGES}
    assert ("cli", "service") in {(s, d) for s, d, _ in EDGES}


def test_core_imports_nothing_of_the_rest() -> None:
    assert _from("core") == set()


def test_data_imports_only_core() -> None:
    assert {(d, f) for d, f in _from("data") if d != "core"} == set()


def test_rbm_imports_only_core_and_data() -> None:
    assert {(d, f) for d, f in _from("rbm") if d not in ("core", "data", "evaluation")} == set()


def test_rbm_does_not_import_evaluation() -> None:
    assert {(d, f) for d, f in _from("rbm") if d == "evaluation"} == set()


def test_store_imports_neither_service_nor_rbm() -> None:
    assert {(d, f) for d, f in _from("store") if d in ("service", "rbm", "evaluation",
                                                        "cli")} == set()


def test_service_is_imported_only_by_the_cli() -> None:
    importers = {(s, f) for s, d, f in EDGES if d == "service" and s not in ("cli", "")}
    assert importers == set()


def test_nothing_imports_the_cli() -> None:
    # `python -m recommender` (__main__) runs the CLI.
    assert {(s, f) for s, d, f in EDGES if d == "cli" and s not in ("", "__main__")} == set()


@pytest.mark.parametrize("package", ["core", "data", "rbm", "evaluation", "store"])
def test_lower_layers_do_not_import_service(package: str) -> None:
    assert {(d, f) for d, f in _from(package) if d == "service"} == set()
