"""Fixtures for the core tests.

The models here are tiny, so torch's intra-op threads only add synchronisation: on a shared
2-core CI machine, two OpenMP threads competing with other processes made a 30-epoch digits
MLP 20x slower than one thread. Each core test runs single-threaded and restores the setting.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
