"""Shared fixtures: seeds, and the MovieLens folder when ../shared/data has it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MOVIELENS_DIR = Path(
    os.environ.get("MOVIELENS_DIR", REPO.parent / "shared" / "data" / "movielens-100k")
)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    if not (MOVIELENS_DIR / "u.data").exists():
        pytest.skip(f"MovieLens-100k not found at {MOVIELENS_DIR} (set MOVIELENS_DIR)")
    return MOVIELENS_DIR
