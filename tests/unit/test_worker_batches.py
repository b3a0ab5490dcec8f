"""Calls sent to the engine in batches (conveyor/worker/batches.py): one batch in flight, what
arrives meanwhile goes in the next; each caller gets its own answer or error; an error of the
whole batch reaches each of its callers; nobody waits forever when the worker stops."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.errors import StaleAttempt
from conveyor.worker.batches import Batches


def test_calls_arriving_while_a_batch_is_in_flight_go_together_in_the_next() -> None:
    sent: list[list[int]] = []

    async def main() -> list[object]:
        release = asyncio.Event()

        async def send(items: list[int]) -> list[object]:
            sent.append(items)
            if len(sent) == 1:
                await release.wait()
            return [item * 10 for item in items]

        batches: Batches[int] = Batches(send, limit=3)
        first = asyncio.create_task(batches.submit(1))
        await asyncio.sleep(0)
        rest = [asyncio.create_task(batches.submit(i)) for i in range(2, 7)]
        await asyncio.sleep(0)
        release.set()
        return await asyncio.gather(first, *rest)

    assert asyncio.run(main()) == [10, 20, 30, 40, 50, 60]
    assert sent == [[1], [2, 3, 4], [5, 6]]  # at most `limit` per batch


def test_each_caller_gets_its_own_error_and_a_batch_error_reaches_all() -> None:
    async def main() -> None:
        async def send(items: list[int]) -> list[object]:
            if 0 in items:
                raise ConnectionError("server away")
            return [StaleAttempt(f"run {i}") if i % 2 else i for i in items]

        batches: Batches[int] = Batches(send)
        results = await asyncio.gather(batches.submit(1), batches.submit(2), return_exceptions=True)
        assert isinstance(results[0], StaleAttempt) and results[1] == 2
        failed = await asyncio.gather(batches.submit(0), batches.submit(4), return_exceptions=True)
        assert all(isinstance(r, ConnectionError) for r in failed)
        assert await batches.submit(6) == 6  # sent again after the failure

    asyncio.run(main())


def test_a_caller_that_stops_waiting_does_not_break_the_others() -> None:
    async def main() -> None:
        release = asyncio.Event()

        async def send(items: list[int]) -> list[object]:
            await release.wait()
            return list(items)

        batches: Batches[int] = Batches(send)
        gone = asyncio.create_task(batches.submit(1))
        kept = asyncio.create_task(batches.submit(2))
        await asyncio.sleep(0)
        gone.cancel()
        release.set()
        assert await kept == 2
        with pytest.raises(asyncio.CancelledError):
            await gone

    asyncio.run(main())


def test_stopping_the_sender_cancels_every_waiting_caller() -> None:
    async def main() -> None:
        async def send(items: list[int]) -> list[object]:
            await asyncio.sleep(3600)
            return list(items)

        batches: Batches[int] = Batches(send)
        waiting = [asyncio.create_task(batches.submit(i)) for i in range(3)]
        await asyncio.sleep(0.01)
        batches.close()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)

    asyncio.run(main())
