"""What a type checker sees of tasks: read by test_typing.py, which runs mypy on this file.

Never imported or run. A line whose comment is `E: text` must get a mypy error containing
`text`; a `reveal_type` line whose comment is `R: type` must reveal exactly `type`; no other
line may get an error.
"""

from typing import Any, reveal_type

from pydantic import BaseModel

from conveyor import BatchResult, Context, Result, RunHandle, Task, schema_task, task, wait


class Video(BaseModel):
    url: str


class Thumbnail(BaseModel):
    width: int


@task(id="resize")
async def resize(payload: dict[str, int], ctx: Context) -> str:
    return "done"


@task(id="count")
def count(payload: list[str]) -> int:  # a plain `def` task
    return len(payload)


@task(id="loose")
async def loose(payload: dict, ctx) -> dict:  # type: ignore[no-untyped-def]  # (ctx not annotated)
    return {}


@task(id="untyped")
async def untyped(payload, ctx):  # type: ignore[no-untyped-def]
    return 1


@task(id="no-payload")
async def no_payload(payload: None) -> None:
    return None


@schema_task(id="video", schema=Video)
async def video(payload: Video, ctx: Context) -> dict[str, str]:
    return {"url": payload.url}


@schema_task(id="bare-video", schema=Video)
def bare_video(payload: Video) -> list[int]:
    return []


async def inference() -> None:
    reveal_type(resize)  # R: conveyor.sdk.task.Task[dict[str, int], str]
    reveal_type(count)  # R: conveyor.sdk.task.Task[list[str], int]
    reveal_type(loose)  # R: conveyor.sdk.task.Task[dict[Any, Any], dict[Any, Any]]
    reveal_type(untyped)  # R: conveyor.sdk.task.Task[Any, Any]
    reveal_type(video)  # R: conveyor.sdk.task.Task[typed_tasks_cases.Video, dict[str, str]]
    reveal_type(bare_video)  # R: conveyor.sdk.task.Task[typed_tasks_cases.Video, list[int]]


async def triggering() -> None:
    reveal_type(await resize.trigger({"a": 1}))  # R: conveyor.results.RunHandle[str]
    reveal_type(await resize.trigger_and_wait({"a": 1}))  # R: conveyor.results.Result[str]
    reveal_type((await count.trigger_and_wait(["a"])).unwrap())  # R: int
    reveal_type((await count.trigger_and_wait(["a"])).output)  # R: int
    reveal_type(await untyped.trigger_and_wait())  # R: conveyor.results.Result[Any]
    reveal_type(await no_payload.trigger())  # R: conveyor.results.RunHandle[None]
    reveal_type(await wait.for_token("token"))  # R: conveyor.results.Result[Any]
    results = await video.batch_trigger_and_wait([{"payload": Video(url="u")}])
    reveal_type(results)  # R: conveyor.results.BatchResult[dict[str, str]]
    reveal_type(results.runs[0])  # R: conveyor.results.Result[dict[str, str]]
    handles = await video.batch_trigger([{"payload": Video(url="u"), "options": {"tags": ["a"]}}])
    reveal_type(handles.runs[0])  # R: conveyor.results.RunHandle[dict[str, str]]


async def wrong_payloads() -> None:
    await resize.trigger("not a dict")  # E: type "str"; expected "dict[str, int]"
    await resize.trigger_and_wait({"a": "b"})  # E: Dict entry 0 has incompatible type
    await count.trigger_and_wait([1])  # E: List item 0 has incompatible type "int"
    await resize.trigger()  # E: Missing positional argument "payload"
    await video.trigger(Thumbnail(width=1))  # E: type "Thumbnail"; expected "Video"
    await video.trigger({"url": "u"})  # E: type "dict[str, str]"; expected "Video"
    await video.batch_trigger([{"payload": {"url": "u"}}])  # E: item "payload" has type "Video"
    await count.batch_trigger([{"payload": ["a"], "option": {}}])  # E: Extra key "option"


async def wrong_outputs() -> None:
    result = await resize.trigger_and_wait({"a": 1})
    words: int = result.output  # E: (expression has type "str", variable has type "int")
    total: bytes = result.unwrap()  # E: (expression has type "str", variable has type "bytes")
    results = await count.batch_trigger_and_wait([{"payload": ["a"]}])
    first: str = results.runs[0].output  # E: (expression has type "int", variable has type "str")
    del words, total, first


@schema_task(id="mismatch", schema=Video)  # E: incompatible type "Callable[[Thumbnail]
async def mismatch(payload: Thumbnail) -> None:
    return None


def annotations_stay_optional(
    any_task: Task,
    result: Result,
    batch: BatchResult,
    handle: RunHandle,
    narrower: Task[dict[str, int], object],
) -> None:
    # unparameterized names mean Any, and a task is a Task of a narrower payload, wider output
    any_task = resize
    narrower = resize
    reveal_type(result.output)  # R: Any
    anything: Any = batch.runs[0].output
    del any_task, narrower, anything, handle
