"""A step tells the engine when it began, so the run's trace shows how long it took."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from conveyor.protocol import AttemptSpec, DurableCall, JournalCall
from conveyor.worker.replay import Replay


def test_a_step_journals_its_result_with_the_time_it_began() -> None:
    sent: list[DurableCall] = []

    async def call(message: DurableCall) -> Any:
        sent.append(message)
        assert isinstance(message, JournalCall)
        return message.value

    async def on_suspend(waitpoints: list[str], compute_used: float) -> dict[str, Any]:
        return {}

    async def slow() -> int:
        await asyncio.sleep(0.05)
        return 7

    async def main() -> tuple[float, Any, float]:
        spec = AttemptSpec(
            run_id="run_1",
            task_id="t",
            attempt=1,
            payload_json="{}",
            max_attempts=1,
            max_duration=None,
            machine="small-1x",
            tags=[],
            metadata={},
            queue="t",
            concurrency_key=None,
            environment="dev",
            run_on_start=False,
        )
        replay = Replay(spec, call, on_suspend, lambda seconds: None)
        before = time.time()
        result = await replay.step("slow", slow, (), {})
        return before, result, time.time()

    before, result, after = asyncio.run(main())
    assert result == 7
    [message] = sent
    assert isinstance(message, JournalCall)
    assert (message.key, message.value) == ("step:slow#1", 7)
    assert message.started_at is not None
    assert before <= message.started_at <= after - 0.05  # when it began, not when it ended
