"""The notebooks execute without error (fast mode), and the committed copies read well.

Each notebook runs in a fresh kernel of this interpreter with ``RECOMMENDER_NOTEBOOK_FAST=1``
(small data, few epochs) and ``MOVIELENS_DIR`` when the folder exists; the executed copy is
discarded, never written back. The committed files carry the outputs of a full run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
# As in conftest.py: MOVIELENS_DIR, else ../shared/data/movielens-100k beside the checkout.
MOVIELENS_DIR = Path(
    os.environ.get("MOVIELENS_DIR", REPO.parent / "shared" / "data" / "movielens-100k"))
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = {"01_rbm_movielens.ipynb", "02_deep_learning_core.ipynb", "03_service_tour.ipynb"}
MAX_BYTES = 1_500_000
# Outputs of one code cell. A progress bar leaves one output per refresh in a notebook
# (315 in 01's training cell once); progress is shown as one line updated in place instead.
MAX_OUTPUTS_PER_CELL = 10
# Calls that draw data on axes: their cell must name both axes.
PLOT_CALLS = re.compile(r"\.(plot|bar|barh|scatter|hist|errorbar|step)\(")


def _crowded_cells(notebook) -> list[tuple[int, int]]:
    """(cell index, outputs) of the code cells with more than MAX_OUTPUTS_PER_CELL outputs."""
    return [(i, len(cell.get("outputs", []))) for i, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" and len(cell.get("outputs", [])) > MAX_OUTPUTS_PER_CELL]


def test_the_notebooks_are_there():
    assert {path.name for path in NOTEBOOKS} >= EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_outputs_of_a_full_run(path):
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size} bytes"
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.get("execution_count") for cell in code), "not executed"
    outputs = [output for cell in code for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                   for o in outputs)
    assert "fast mode: off" in text, "committed outputs must come from a full run"
    assert not _crowded_cells(notebook), "cells with too many outputs (progress bars?)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_plots_label_both_axes(path):
    notebook = nbformat.read(path, as_version=4)
    unlabelled = []
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or not PLOT_CALLS.search(cell.source):
            continue
        for axis in ("x", "y"):
            if not re.search(rf"set_{axis}label\(|\b{axis}label\s*=|plt\.{axis}label\(",
                             cell.source):
                unlabelled.append(f"cell {i}: no {axis} label")
    assert not unlabelled, unlabelled


@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_in_fast_mode(path, monkeypatch):
    monkeypatch.setenv("RECOMMENDER_NOTEBOOK_FAST", "1")
    if (MOVIELENS_DIR / "u.data").exists():
        monkeypatch.setenv("MOVIELENS_DIR", str(MOVIELENS_DIR))
    else:
        monkeypatch.delenv("MOVIELENS_DIR", raising=False)
    notebook = nbformat.read(path, as_version=4)
    # "python3" is ipykernel's spec; jupyter_client runs it with this very interpreter.
    client = nbclient.NotebookClient(notebook, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    assert not _crowded_cells(notebook), "a re-run leaves too many outputs (progress bars?)"
    text = "".join(o.get("text", "") for cell in notebook.cells
                   for o in cell.get("outputs", []))
    assert "fast mode: on" in text
