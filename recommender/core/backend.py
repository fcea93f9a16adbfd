"""Small helpers shared by the core: device resolution, CPU threads and bf16 support, tensor
conversion, naming."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

# Keras's default fuzz factor, used to clip probabilities before taking logs.
EPSILON = 1e-7

_name_counters: dict[str, int] = defaultdict(int)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or None) picks CUDA when torch sees a GPU, else the CPU."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Received: device={device!r}"
        ) from exc


# -- CPU threads ----------------------------------------------------------------------------------
# torch's default (one intra-op thread per core) collapses when other processes keep the cores
# busy: its OpenMP threads wait for each other at every operation, and a thread that is not
# scheduled stalls them all. Measured on a shared 2-core VM, RBM training with the default
# threads ran 4-6x slower than with one thread. So the RBM's training sets the thread count
# deliberately (``configure_threads``): RECOMMENDER_THREADS when set, else torch's own setting
# when OMP_NUM_THREADS is set, else ``default_threads()``.
THREADS_ENV = "RECOMMENDER_THREADS"


def _own_recent_load() -> float:
    """Roughly how many CPUs this process itself kept busy lately (it counts in the load
    average too): its CPU time over its age, the age capped at the load average's minute."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    times = os.times()
    return (times.user + times.system) / max(age, 60.0) if age > 0 else 0.0


def default_threads() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``) less those other processes
    keep busy (the 1-minute load average minus this process's own share), at least 1: all of
    them on an idle machine, one when every core is taken."""
    if hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))
    else:  # macOS, Windows
        cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        return cpus
    busy = max(0.0, load - _own_recent_load())
    return max(1, min(cpus, int(cpus - busy + 0.5)))


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads and return the count: ``threads`` if given, else the
    RECOMMENDER_THREADS environment variable, else torch's current setting when OMP_NUM_THREADS
    is set (the user chose), else ``default_threads()``."""
    if threads is None:
        raw = os.environ.get(THREADS_ENV, "").strip()
        if raw:
            try:
                threads = int(raw)
            except ValueError:
                threads = 0
            if threads < 1:
                raise ValueError(f"{THREADS_ENV} must be a positive integer. Received: "
                                 f"{THREADS_ENV}={raw!r}")
        elif os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        else:
            threads = default_threads()
    _check_threads(threads)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def _check_threads(threads: object) -> None:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer. Received: threads={threads!r}")


def limit_blas_threads(threads: int) -> None:
    """Run numpy's BLAS (the serving products where it is faster: numpy_products_are_faster)
    on ``threads`` threads; it keeps its own pool, one thread per core by default. The serving
    process sets it to torch's count; training leaves it alone (a retrain inside the serving
    process must not change what its requests run on)."""
    threadpool_limits(threads, user_api="blas")


# -- scoring threads ---------------------------------------------------------------------------
# A batch of users can be scored on several Python threads at once, each on its own block of
# the items (or of the users, for the candidate search: rbm.scoring): the products (torch's or
# numpy's) and the element-wise work release the GIL, and unlike more intra-op threads
# (OpenMP's, OpenBLAS's), which spin and wait for each other at every operation and collapsed
# on a busy 2-vCPU VM, each thread here runs whole operations on its own block.
_scoring: tuple[int, ThreadPoolExecutor | None] = (1, None)  # (threads, pool of the extra ones)
_scoring_lock = threading.Lock()


def set_scoring_threads(threads: int) -> None:
    """Score a batch on ``threads`` threads (the caller's and ``threads - 1`` pool threads)
    from now on; 1 scores it on the caller's thread alone, the default."""
    global _scoring
    _check_threads(threads)
    pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="scoring") if threads > 1 else None
    with _scoring_lock:
        (_, old), _scoring = _scoring, (threads, pool)
    if old is not None:
        old.shutdown(wait=False)  # work already handed to it still finishes


def scoring_threads() -> tuple[int, ThreadPoolExecutor | None]:
    """``(threads, pool)``: how many threads score one batch (``set_scoring_threads``) and the
    pool of the extra ones (None for one thread)."""
    return _scoring


# bfloat16 products replace float32 ones (training's dense products, the serving's candidate
# search) only where they run at least this many times faster.
BF16_MIN_SPEEDUP = 1.5


@functools.cache
def cpu_has_fast_bfloat16() -> bool:
    """Whether bfloat16 matrix products run clearly faster than float32 ones on this CPU
    (:data:`BF16_MIN_SPEEDUP` times or more), measured once per process.

    Native support (AVX512-BF16 or AMX tiles) is needed but not enough, so the rate is
    measured rather than read off the CPU flags. With AMX, bf16 products ran 5x faster than
    float32 (617 vs 129 GFLOP/s, a 1024 x 21354 x 400 product on 2 cores); on a VM whose CPU
    reports AVX512-BF16 but no AMX they ran at 0.55-0.7x float32's rate (64-82 vs 96-152
    GFLOP/s, 2026-12-03), so there float32 is both faster and exact. Without native support
    torch emulates bf16, slower still, and nothing is measured."""
    cpu = getattr(torch, "cpu", None)  # the probes below are private: looked up, not imported
    if cpu is None:
        return False
    try:
        native = bool(torch.backends.mkldnn.is_available()
                      and (cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported()))
    except AttributeError:  # a torch without these probes
        return False
    return native and bfloat16_speedup() >= BF16_MIN_SPEEDUP


def bfloat16_speedup(rows: int = 256, inner: int = 1024, cols: int = 512, repeats: int = 3,
                     ) -> float:
    """float32's time over bfloat16's for one ``(rows, inner) @ (inner, cols)`` product on
    this CPU with torch's current threads (best of ``repeats`` each, interleaved so that a
    busy machine slows both alike): > 1 where bf16 is faster. About 10 ms by default."""
    a, b = torch.rand(rows, inner), torch.rand(inner, cols)
    a16, b16 = a.bfloat16(), b.bfloat16()
    with torch.inference_mode():
        fp32, bf16 = _best_seconds([lambda: torch.mm(a, b), lambda: torch.mm(a16, b16)], repeats)
    return fp32 / max(bf16, 1e-9)


def _best_seconds(runs: list[Callable[[], object]], repeats: int) -> list[float]:
    """Each run's best time over ``repeats`` calls, after one warm-up call each (the first
    call picks and builds the kernel), the runs interleaved so that a busy machine slows them
    alike."""
    for run in runs:
        run()
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            started = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - started)
    return best


# The serving's full products (``rbm.scoring``) go through numpy's BLAS instead of torch's
# where they run at least this many times faster.
NUMPY_MIN_SPEEDUP = 1.2


@functools.cache
def numpy_products_are_faster() -> bool:
    """Whether numpy's BLAS runs the serving's skinny products (a batch of users times every
    item's weights) clearly faster than torch's (:data:`NUMPY_MIN_SPEEDUP` times or more),
    measured once per process.

    torch's CPU products go through MKL, which on AMD processors runs these shapes at a
    fraction of the machine's rate: on a 2-vCPU AMD EPYC (AVX2, no AVX-512) a (32, 200) @
    (200, 21354) product took 8.5 ms in torch and 4.6 ms in numpy's OpenBLAS with the
    weights stored transposed (2026-12-03). Elsewhere MKL may well be the faster one, so the
    rate is measured, not assumed from the vendor."""
    return numpy_product_speedup() >= NUMPY_MIN_SPEEDUP


def numpy_product_speedup(rows: int = 32, inner: int = 200, cols: int = 8192, repeats: int = 5,
                          ) -> float:
    """torch's time over numpy's for the serving product ``x @ W.T`` (``x (rows, inner)``,
    ``W (cols, inner)``): torch on W as stored, numpy on a transposed copy, both with torch's
    current thread count (best of ``repeats`` each, interleaved). > 1 where numpy is faster.
    About 10-20 ms by default."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(rows, inner, generator=generator)
    W = torch.rand(cols, inner, generator=generator)
    x_np, WT_np = x.numpy(), W.t().contiguous().numpy()
    with torch.inference_mode(), threadpool_limits(torch.get_num_threads(), user_api="blas"):
        in_torch, in_numpy = _best_seconds(
            [lambda: torch.mm(x, W.t()), lambda: np.matmul(x_np, WT_np)], repeats)
    return in_torch / max(in_numpy, 1e-9)


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(mmap_below: int = 32 << 20, trim_above: int = 128 << 20) -> bool:
    """Let this process reuse the memory it frees instead of handing it back to the OS (glibc
    only; returns whether it applied).

    glibc serves a large allocation with its own ``mmap`` and unmaps it when freed, so the
    next one of that size faults every page in again. Scoring a batch allocates several
    ``(users, items)`` buffers of megabytes each: with the 10M-shape model (10,677 items) a
    32-user batch took 1,607 page faults and 17.7 ms, and 0.1 faults and 12.5 ms once
    allocations below ``mmap_below`` came from the heap and free heap memory was kept up to
    ``trim_above``. Process-wide and permanent; the serving process calls it at start-up.
    (Done here with ``ctypes`` because the ``MALLOC_*_`` environment variables only act on
    a process started with them.)
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_below)
                and libc.mallopt(_M_TRIM_THRESHOLD, trim_above))


def snake_case(name: str) -> str:
    """``"MaxPooling2D"`` -> ``"max_pooling2d"`` (Keras's automatic layer names)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(prefix: str) -> str:
    """``dense``, ``dense_1``, ``dense_2``... as Keras names its layers."""
    count = _name_counters[prefix]
    _name_counters[prefix] += 1
    return prefix if count == 0 else f"{prefix}_{count}"


def to_tensor(data: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Array-like -> tensor; floating data becomes float32 unless ``dtype`` says otherwise."""
    if isinstance(data, torch.Tensor):
        tensor = data
    else:
        tensor = torch.as_tensor(np.asarray(data))
    if dtype is not None:
        return tensor.to(dtype)
    if tensor.is_floating_point() and tensor.dtype != torch.float32:
        return tensor.float()
    if tensor.dtype == torch.bool:
        return tensor.float()
    return tensor


def normalize_tuple(value: Any, n: int, name: str) -> tuple[int, ...]:
    """``3`` -> ``(3, 3)``; checks every entry is a positive int (Keras's conv arguments)."""
    if isinstance(value, int):
        values = (value,) * n
    else:
        try:
            values = tuple(int(v) for v in value)
        except TypeError as exc:
            raise ValueError(
                f"{name} must be an int or a tuple of {n} ints. Received: {name}={value!r}"
            ) from exc
        if len(values) != n or any(int(v) != v for v in value):
            raise ValueError(
                f"{name} must be an int or a tuple of {n} ints. Received: {name}={value!r}"
            )
    if any(v <= 0 for v in values):
        raise ValueError(f"{name} must contain positive ints. Received: {name}={value!r}")
    return values
