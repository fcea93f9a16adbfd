"""MicroBatcher: requests in flight together go in one call; errors reach only their own."""

from __future__ import annotations

import asyncio
import threading

import pytest

from recommender.service.batching import MicroBatcher


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.mark.parametrize("threaded", [True, False])
def test_a_lone_request_is_answered_at_once_in_a_batch_of_one(threaded: bool) -> None:
    calls: list[list[int]] = []

    def process(requests: list[int]) -> list[int]:
        calls.append(list(requests))
        return [r * 10 for r in requests]

    batcher = MicroBatcher(process, threaded=threaded)
    try:
        assert run(batcher.submit(4)) == 40
    finally:
        batcher.close()
    assert calls == [[4]]


@pytest.mark.parametrize("threaded", [True, False])
def test_requests_in_flight_together_share_calls_in_order(threaded: bool) -> None:
    calls: list[list[int]] = []
    sizes: list[int] = []

    def process(requests: list[int]) -> list[int]:
        calls.append(list(requests))
        return [r * 10 for r in requests]

    batcher = MicroBatcher(process, max_batch=4, threaded=threaded, on_batch=sizes.append)

    async def many() -> list[int]:
        return await asyncio.gather(*(batcher.submit(n) for n in range(10)))

    try:
        assert run(many()) == [n * 10 for n in range(10)]
    finally:
        batcher.close()
    # All ten were queued before the first call ran: 4 + 4 + 2, in submission order.
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert sizes == [4, 4, 2]


def test_requests_arriving_during_a_call_go_together_in_the_next() -> None:
    release = threading.Event()
    calls: list[list[int]] = []

    def process(requests: list[int]) -> list[int]:
        calls.append(list(requests))
        if len(calls) == 1:
            release.wait(5)  # the first call is slow; others queue meanwhile
        return list(requests)

    batcher = MicroBatcher(process)

    async def scenario() -> list[int]:
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)  # the first call is running now
        rest = [asyncio.ensure_future(batcher.submit(n)) for n in (1, 2, 3)]
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(first, *rest)

    try:
        assert run(scenario()) == [0, 1, 2, 3]
    finally:
        batcher.close()
    assert calls == [[0], [1, 2, 3]]


def test_an_error_for_one_request_reaches_only_that_request() -> None:
    def process(requests: list[int]) -> list:
        return [ValueError(f"bad request {r}") if r == 2 else r for r in requests]

    batcher = MicroBatcher(process, threaded=False)

    async def many() -> list:
        return await asyncio.gather(*(batcher.submit(n) for n in range(4)), return_exceptions=True)

    try:
        results = run(many())
    finally:
        batcher.close()
    assert results[:2] == [0, 1] and results[3] == 3
    assert isinstance(results[2], ValueError) and "bad request 2" in str(results[2])


def test_a_failing_call_fails_every_request_of_its_batch_then_recovers() -> None:
    calls = 0

    def process(requests: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database went away")
        return list(requests)

    batcher = MicroBatcher(process)

    async def scenario():
        failed = await asyncio.gather(
            *(batcher.submit(n) for n in range(3)), return_exceptions=True
        )
        again = await batcher.submit(7)
        return failed, again

    try:
        failed, again = run(scenario())
    finally:
        batcher.close()
    assert all(isinstance(f, ConnectionError) for f in failed)
    assert again == 7


def test_max_batch_and_gather_time_are_validated() -> None:
    with pytest.raises(ValueError, match="max_batch must be >= 1. Received: max_batch=0"):
        MicroBatcher(lambda requests: requests, max_batch=0)
    with pytest.raises(ValueError, match="gather_s must be >= 0. Received: gather_s=-1"):
        MicroBatcher(lambda requests: requests, gather_s=-1)


def _staggered_rounds(gather_s: float) -> list[list[int]]:
    """Three clients: a first round together, then a second round arriving 10 ms apart."""
    calls: list[list[int]] = []

    def process(requests: list[int]) -> list[int]:
        calls.append(list(requests))
        return list(requests)

    batcher = MicroBatcher(process, threaded=False, gather_s=gather_s)

    async def scenario() -> None:
        await asyncio.gather(*(batcher.submit(n) for n in range(3)))
        second = []
        for n in (3, 4, 5):
            second.append(asyncio.ensure_future(batcher.submit(n)))
            await asyncio.sleep(0.01)
        await asyncio.gather(*second)

    try:
        run(scenario())
    finally:
        batcher.close()
    return calls


def test_after_a_batch_of_n_the_next_waits_for_n_requests() -> None:
    # A round of clients answered together comes back spread over a few milliseconds: the
    # next batch waits for as many as the last one had instead of splitting the round.
    assert _staggered_rounds(gather_s=0.5) == [[0, 1, 2], [3, 4, 5]]
    # Without gathering the first arrival goes alone and the rest follow as they come.
    assert _staggered_rounds(gather_s=0)[1] == [3]


def test_a_gather_that_times_out_stops_waiting_for_the_missing_clients() -> None:
    calls: list[list[int]] = []

    def process(requests: list[int]) -> list[int]:
        calls.append(list(requests))
        return list(requests)

    batcher = MicroBatcher(process, threaded=False, gather_s=0.05)

    async def scenario() -> None:
        await asyncio.gather(*(batcher.submit(n) for n in range(3)))
        await batcher.submit(3)  # waits 50 ms for two more that never come
        later = asyncio.ensure_future(batcher.submit(4))
        await asyncio.sleep(0.02)
        await asyncio.gather(later, batcher.submit(5))

    try:
        run(scenario())
    finally:
        batcher.close()
    # After the timeout a lone request goes at once again: 4 does not wait for 5.
    assert calls == [[0, 1, 2], [3], [4], [5]]


@pytest.mark.parametrize(
    "url, setting, threaded",
    [
        ("sqlite:///x.db", None, False),  # embedded: on the event loop
        ("postgresql+psycopg://db/x", None, True),  # behind a network: on a thread
        ("sqlite:///x.db", True, True),
        ("postgresql+psycopg://db/x", False, False),
    ],
)
def test_where_batches_run_follows_the_database_unless_set(url, setting, threaded) -> None:
    from recommender.service import Settings

    settings = Settings(database_url=url, recommend_in_thread=setting)
    assert settings.batches_in_thread() is threaded
