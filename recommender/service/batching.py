"""Micro-batching: concurrent async requests coalesced into one call on a worker thread.

The recommendation hot path costs a database round trip, a matrix product and a hop to a
thread for every call, whatever the number of users in it. Under load many requests are in
flight at once, so they are handed over together: one query and one scoring call serve them
all. An idle service answers a lone request at once (a batch of one); under load, batches
grow while a previous batch is still running.

Under steady load the clients whose answers just went out send their next requests within
a millisecond or two, while the event loop is still reading them. Taking whatever is queued
at that instant splits one round of N requests into a batch of 1 and a batch of N - 1, and
a batch of one costs nearly as much as a full one (a whole pass over the weights for one
user). So after a batch of n > 1, the next one waits up to ``gather_s`` for n requests to be
queued; after a batch of one (an idle or lightly loaded service) nothing waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Run ``process(requests)`` on one worker thread for every request waiting at the time.

    ``process`` takes a list of requests and returns one outcome per request, in order: a
    result, or an exception that only that request raises. If ``process`` itself raises,
    every request of the batch raises it.

    One batch runs at a time; requests that arrive meanwhile queue and go together in the
    next one (at most ``max_batch`` per call). Create it inside the event loop's lifetime
    (the app's lifespan) and :meth:`close` it at the end.
    """

    def __init__(
        self,
        # One outcome per request: its result, or the exception to raise for it alone.
        process: Callable[[list[T]], Sequence[R | BaseException]],
        *,
        max_batch: int = 64,
        name: str = "batch",
        on_batch: Callable[[int], None] | None = None,
        threaded: bool = True,
        gather_s: float = 0.002,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1. Received: max_batch={max_batch!r}")
        if gather_s < 0:
            raise ValueError(f"gather_s must be >= 0. Received: gather_s={gather_s!r}")
        self._process = process
        self.max_batch = max_batch
        self._on_batch = on_batch  # e.g. a batch-size histogram
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) if threaded else None
        )
        self._pending: deque[tuple[T, asyncio.Future]] = deque()
        self._drainer: asyncio.Task | None = None
        self.gather_s = gather_s
        self._want = 1  # requests to wait for before the next batch (the last batch's size)
        self._gathered: asyncio.Event | None = None  # set when `_want` requests are queued

    async def submit(self, request: T) -> R:
        """The result for ``request``, computed in the next batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._pending.append((request, future))
        if self._gathered is not None and len(self._pending) >= self._want:
            self._gathered.set()
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    def close(self) -> None:
        """Stop the worker thread (after the batch it is running, if any)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                await self._gather()
                take = min(self.max_batch, len(self._pending))
                batch = [self._pending.popleft() for _ in range(take)]
                batch = [(request, f) for request, f in batch if not f.done()]  # client gone
                if not batch:
                    continue
                self._want = len(batch)
                if self._on_batch is not None:
                    self._on_batch(len(batch))
                requests = [request for request, _ in batch]
                try:
                    if self._executor is None:
                        outcomes = self._process(requests)
                    else:
                        outcomes = await loop.run_in_executor(
                            self._executor, self._process, requests
                        )
                    if len(outcomes) != len(batch):
                        raise RuntimeError(
                            f"batch process returned {len(outcomes)} outcomes for "
                            f"{len(batch)} requests"
                        )
                except asyncio.CancelledError:
                    self._pending.extendleft(reversed(batch))
                    raise
                except Exception as exc:  # noqa: BLE001 - every request of the batch gets it
                    outcomes = [exc] * len(batch)
                for (_, f), outcome in zip(batch, outcomes, strict=True):
                    if f.done():
                        continue
                    if isinstance(outcome, BaseException):
                        f.set_exception(outcome)
                    else:
                        f.set_result(outcome)
        except asyncio.CancelledError:
            # The loop is shutting down: nobody will run the queued requests.
            while self._pending:
                self._pending.popleft()[1].cancel()
            raise
        finally:
            self._drainer = None

    async def _gather(self) -> None:
        """Wait up to ``gather_s`` until as many requests are queued as the last batch had."""
        if len(self._pending) >= self._want or self.gather_s == 0:
            return
        self._gathered = asyncio.Event()
        try:
            await asyncio.wait_for(self._gathered.wait(), self.gather_s)
        except TimeoutError:
            pass  # fewer clients than before: this batch is smaller, and so is the next wait
        finally:
            self._gathered = None
