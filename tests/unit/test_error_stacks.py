"""A run's error shows the task's own code, not Conveyor's: its traceback starts at the user's
frames, and an error Conveyor raised alone (an output it cannot store) shows no frame of ours."""

from __future__ import annotations

import asyncio

from conveyor.errors import PayloadError
from conveyor.serialization import dumps
from conveyor.worker.executor import error_dict


def users_code(n: int) -> int:
    raise ValueError(f"bad input {n}")


async def task_body() -> None:
    await asyncio.sleep(0)
    users_code(3)


def test_the_stack_starts_at_the_task_and_keeps_every_frame_of_it() -> None:
    try:
        asyncio.run(task_body())
    except ValueError as exc:
        stack = error_dict(exc)["stack"]
    assert "task_body" in stack and "users_code" in stack and "ValueError: bad input 3" in stack
    assert "conveyor/" not in stack.replace("tests/unit", "")


def test_an_output_conveyor_cannot_store_shows_none_of_its_frames() -> None:
    try:
        dumps({"when": {1, 2}}, "output")
    except PayloadError as exc:
        error = error_dict(exc, "output_invalid")
    assert "serialization.py" not in error["stack"]
    assert (
        error["stack"]
        .strip()
        .endswith("PayloadError: output.when is a set, which is not JSON; use a list")
    )


def test_chained_errors_lose_our_frames_too() -> None:
    try:
        try:
            dumps({1: 2})
        except PayloadError as inner:
            raise RuntimeError("while saving") from inner
    except RuntimeError as exc:
        stack = error_dict(exc)["stack"]
    assert (
        "serialization.py" not in stack
        and "while saving" in stack
        and "JSON keys are strings" in stack
    )
