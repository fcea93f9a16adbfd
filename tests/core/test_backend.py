"""core.backend: the CPU thread default and its overrides, bf16 detection."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch

from recommender.core import backend


@pytest.fixture(autouse=True)
def _restore_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv(backend.THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    yield
    torch.set_num_threads(before)


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def test_default_threads_subtracts_the_load_of_other_processes(monkeypatch):
    cpus = _cpus()
    monkeypatch.setattr(backend, "_own_recent_load", lambda: 0.0)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert backend.default_threads() == cpus  # idle: every CPU
    monkeypatch.setattr(os, "getloadavg", lambda: (cpus + 3.0, 0.0, 0.0))
    assert backend.default_threads() == 1  # every core taken: one thread, never zero
    monkeypatch.setattr(os, "getloadavg", lambda: (cpus - 0.4, 0.0, 0.0))
    assert backend.default_threads() == 1
    # This process's own work counts in the load average but is not "other processes".
    monkeypatch.setattr(backend, "_own_recent_load", lambda: cpus - 0.4)
    assert backend.default_threads() == cpus


def test_own_recent_load_is_a_small_non_negative_number():
    assert 0.0 <= backend._own_recent_load() <= _cpus() + 1


def test_configure_threads_precedence(monkeypatch):
    monkeypatch.setattr(backend, "default_threads", lambda: 1)
    assert backend.configure_threads() == 1
    assert torch.get_num_threads() == 1
    assert backend.configure_threads(2) == 2  # an explicit count wins
    assert torch.get_num_threads() == 2
    monkeypatch.setenv(backend.THREADS_ENV, "2")
    torch.set_num_threads(1)
    assert backend.configure_threads() == 2  # then the environment variable
    monkeypatch.delenv(backend.THREADS_ENV)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(2)
    assert backend.configure_threads() == 2  # OMP_NUM_THREADS set: torch's setting stays


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5"])
def test_configure_threads_refuses_a_bad_environment_value(monkeypatch, raw):
    monkeypatch.setenv(backend.THREADS_ENV, raw)
    with pytest.raises(ValueError, match=f"RECOMMENDER_THREADS must be a positive integer. "
                                         f"Received: RECOMMENDER_THREADS='{raw}'"):
        backend.configure_threads()


def test_configure_threads_refuses_a_bad_argument():
    with pytest.raises(ValueError, match="threads must be a positive integer. Received: "
                                         "threads=0"):
        backend.configure_threads(0)


def test_bfloat16_detection_is_a_bool_and_bf16_products_work():
    fast = backend.cpu_has_fast_bfloat16()
    assert isinstance(fast, bool)
    x = torch.ones(4, 3, dtype=torch.bfloat16)
    assert torch.equal(x @ x.t(), torch.full((4, 4), 3.0, dtype=torch.bfloat16))


@pytest.fixture
def measured_afresh():
    """The once-per-process decisions measured again inside the test (with its patches), and
    forgotten after it."""
    for decision in (backend.cpu_has_fast_bfloat16, backend.numpy_products_are_faster):
        decision.cache_clear()
    yield
    for decision in (backend.cpu_has_fast_bfloat16, backend.numpy_products_are_faster):
        decision.cache_clear()


@pytest.mark.parametrize("speedup, expected",
                         [(0.6, False), (1.49, False), (1.5, True), (5.0, True)])
def test_bfloat16_is_used_only_where_it_measures_faster(monkeypatch, measured_afresh, speedup,
                                                         expected):
    # Native bf16 support is necessary but not enough: on AVX512-BF16 without AMX the products
    # measured 0.6x float32's rate, so the decision follows the measured speed-up.
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(backend, "bfloat16_speedup", lambda: speedup)
    assert backend.cpu_has_fast_bfloat16() is expected


def test_bfloat16_is_never_measured_without_native_support(monkeypatch, measured_afresh):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(backend, "bfloat16_speedup", lambda: pytest.fail("measured"))
    assert backend.cpu_has_fast_bfloat16() is False


def test_bfloat16_speedup_is_a_ratio_of_real_timings():
    ratio = backend.bfloat16_speedup(rows=8, inner=16, cols=8, repeats=1)
    assert 0 < ratio < float("inf")


def test_numpy_product_speedup_is_a_ratio_of_real_timings():
    ratio = backend.numpy_product_speedup(rows=4, inner=8, cols=16, repeats=1)
    assert 0 < ratio < float("inf")


@pytest.mark.parametrize("speedup, expected",
                         [(0.5, False), (1.19, False), (1.2, True), (1.8, True)])
def test_numpy_products_are_used_only_where_they_measure_faster(monkeypatch, measured_afresh,
                                                               speedup, expected):
    monkeypatch.setattr(backend, "numpy_product_speedup", lambda: speedup)
    assert backend.numpy_products_are_faster() is expected


def test_blas_threads_are_limited_and_training_leaves_them_alone():
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    original = blas()
    torch_threads = torch.get_num_threads()
    try:
        for threads in (1, 2):
            backend.limit_blas_threads(threads)
            assert blas() == {threads}
        backend.configure_threads(1)  # what fit() calls: torch's threads only
        assert blas() == {2}
    finally:
        torch.set_num_threads(torch_threads)
        threadpool_limits(max(original), user_api="blas")


# Loads the model saved in argv[1], scores a 32-user batch and prints the page faults per batch;
# in a child process: keep_freed_memory is process-wide and permanent.
_FAULTS_SCRIPT = """
import random, resource, sys, torch
from recommender.core import backend
from recommender.rbm import RBMRecommender
torch.set_num_threads(1)
if sys.argv[2] == "keep":
    assert backend.keep_freed_memory()
model = RBMRecommender.load(sys.argv[1], device="cpu")
rng = random.Random(0)
users = [{str(rng.randrange(model.n_items)): rng.choice([1, 5]) for _ in range(100)}
         for _ in range(32)]
for _ in range(3):
    model.recommend(users, k=10)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    model.recommend(users, k=10)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_stops_page_faults_when_scoring(tmp_path):
    from recommender.rbm import RBMConfig, RBMRecommender

    n_items, hidden = 10_000, 200  # the MovieLens-10M shape's catalogue and default units
    model = RBMRecommender(RBMConfig(n_hidden=hidden, n_preference_hidden=hidden, device="cpu"))
    g = torch.Generator().manual_seed(0)
    W = torch.randn(n_items * 2, 2 * hidden, generator=g) * 0.01
    W.view(n_items, 2, -1)[:, 1, :hidden] = W.view(n_items, 2, -1)[:, 0, :hidden]  # tied
    model.W, model.a = W, torch.randn(n_items * 2, generator=g)
    model.b, model.prior = torch.randn(2 * hidden, generator=g), torch.randn(n_items, generator=g)
    model.item_ids = [str(j) for j in range(n_items)]
    model._item_index = {item: j for j, item in enumerate(model.item_ids)}
    model.save(tmp_path / "model")

    def faults_per_batch(mode):
        done = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, str(tmp_path / "model"),
                               mode], capture_output=True, text=True, check=True)
        return float(done.stdout.strip().splitlines()[-1])

    # A loaded model's 32-user batch allocates (users, items) buffers of ~1.3-2.6 MB that
    # glibc maps and unmaps each time: 1,530 page faults per batch in 6 of 8 runs here (in the
    # others glibc raised its threshold by itself after a few batches: 306-981). Reusing them:
    # 63, the same in every run.
    assert faults_per_batch("keep") < 100
