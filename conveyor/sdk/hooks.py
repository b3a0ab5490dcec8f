"""`hooks` and `middleware`: code that runs around every task of the project.

    from conveyor import hooks, middleware

    @hooks.on_failure
    async def page_someone(payload, error, ctx):   # after any task's run fails, once
        ...

    @middleware
    async def with_db(ctx, call_next):              # around every attempt of every task
        async with pool.connection() as conn:
            token = db.set(conn)                     # a ContextVar: the run function sees it
            try:
                return await call_next()
            finally:
                db.reset(token)

Global hooks take the arguments of the task hooks of the same name (docs/retries-and-errors.md)
and run after the task's own hook; an error in one is written to the run's logs and changes
nothing else. `on_complete(payload, result, ctx)` runs once a run has ended, completed or
failed, after on_success / on_failure: `result` is a `Result` (`result.ok`, then `.output`, or
`.error`, a `RunFailure`). `on_wait(payload, wait, ctx)` runs in the attempt just before it
waits (a duration, a date, a token, child runs), `on_resume(payload, wait, ctx)` when the run
goes on after that wait (in the attempt that resumes it); `wait` is a `Wait` (`.kind`, `.id`,
`.until`). They run outside the middleware (a middleware's ContextVars are not set
there). Middleware run in the order they were registered, the first outermost, inside the
attempt: what one sets in a `contextvars.ContextVar` before `call_next()` is what the run
function reads (a database connection per run, a tracing span). Register both at import time,
in a module of the project's task directories, so every worker process has them.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from conveyor.errors import TaskDefinitionError
from conveyor.results import Result

HOOK_NAMES = (
    "on_start",
    "on_success",
    "on_failure",
    "on_cancel",
    "on_complete",
    "on_wait",
    "on_resume",
)
# the hooks the engine owes a run once it has ended (a worker runs them even after a crash);
# on_start, on_wait and on_resume run inside an attempt
ENDING_HOOKS = ("on_success", "on_failure", "on_cancel", "on_complete")

WaitKind = Literal["duration", "date", "token", "run", "batch"]


@dataclass(frozen=True)
class Wait:
    """What a run waits on, as `on_wait` and `on_resume` receive it.

    `kind`: "duration" (`wait.for_`), "date" (`wait.until`), "token" (`wait.for_token`), "run"
    (`trigger_and_wait`) or "batch" (`batch_trigger_and_wait`, `batch.trigger_by_task_and_wait`).
    `id`: the token's id, the child run's id, the batch's id, or the waitpoint's id for a
    duration or a date. `until`: when a duration or a date wait ends (None for the others)."""

    kind: WaitKind
    id: str
    until: datetime | None = None


class RunFailure(Exception):
    """How a run failed, as handed to on_failure and in on_complete's `result.error`:
    `.status` (FAILED, CRASHED, TIMED_OUT, ...), `.name`, `.code`, `.message`, `.stack`."""

    def __init__(self, status: str, error: dict[str, Any] | None) -> None:
        error = error or {}
        self.status = status
        self.name = error.get("name", "Error")
        self.code = error.get("code")
        self.message = error.get("message", status)
        self.stack = error.get("stack")
        super().__init__(f"{self.name}: {self.message}" if self.name else self.message)


def run_result(
    run_id: str, task_id: str, status: str, output: Any, error: dict[str, Any] | None
) -> Result[Any]:
    """How a run ended, as `on_complete` receives it: ok with its output, or its RunFailure."""
    if status == "COMPLETED":
        return Result(ok=True, id=run_id, task_id=task_id, output=output)
    return Result(ok=False, id=run_id, task_id=task_id, error=RunFailure(status, error))


async def call_hooks(
    name: str,
    hooks: list[Callable[..., Any]],
    args: tuple[Any, ...],
    log: Callable[[str, str, dict[str, Any] | None], None],
) -> None:
    """Call `hooks` of `name` in order, each with `args`: an `async def` on the event loop, a
    plain one in a thread (it must not hold the loop). An error in one is logged through
    `log(level, message, attributes)` and the next one runs: a hook never changes a run."""
    for hook in hooks:
        try:
            if inspect.iscoroutinefunction(hook):
                await hook(*args)
            else:
                answer = await asyncio.get_running_loop().run_in_executor(
                    None, contextvars.copy_context().run, hook, *args
                )
                if inspect.isawaitable(answer):
                    await answer
        except Exception as exc:
            log(
                "error",
                f"{name} hook raised {type(exc).__name__}: {exc}",
                {"stack": "".join(traceback.format_exception(exc))},
            )


F = TypeVar("F", bound=Callable[..., Any])

_hooks: dict[str, list[Callable[..., Any]]] = {name: [] for name in HOOK_NAMES}
_middleware: list[Callable[..., Awaitable[Any]]] = []


def global_hooks(name: str) -> list[Callable[..., Any]]:
    """The project-wide hooks of `name`, in the order they were registered."""
    return list(_hooks.get(name, ()))


def _register(name: str, fn: F) -> F:
    if not callable(fn):
        raise TaskDefinitionError(f"hooks.{name} takes a function, got {fn!r}")
    if fn not in _hooks[name]:  # a module imported twice registers once
        _hooks[name].append(fn)
    return fn


class Hooks:
    """`conveyor.hooks`: lifecycle hooks for every task (see the module docstring)."""

    def on_start(self, fn: F) -> F:
        """`fn(payload, ctx)` before the first attempt of any run."""
        return _register("on_start", fn)

    def on_success(self, fn: F) -> F:
        """`fn(payload, output, ctx)` once any run has completed."""
        return _register("on_success", fn)

    def on_failure(self, fn: F) -> F:
        """`fn(payload, error, ctx)` once any run has failed (after its last attempt)."""
        return _register("on_failure", fn)

    def on_cancel(self, fn: F) -> F:
        """`fn(payload, ctx)` once any run was canceled."""
        return _register("on_cancel", fn)

    def on_complete(self, fn: F) -> F:
        """`fn(payload, result, ctx)` once any run has ended, completed or failed (not when
        canceled): `result.ok`, then `result.output` or `result.error` (a RunFailure)."""
        return _register("on_complete", fn)

    def on_wait(self, fn: F) -> F:
        """`fn(payload, wait, ctx)` in any attempt, just before it waits on `wait` (a Wait)."""
        return _register("on_wait", fn)

    def on_resume(self, fn: F) -> F:
        """`fn(payload, wait, ctx)` in any attempt that goes on after waiting on `wait`."""
        return _register("on_resume", fn)

    def remove(self, fn: Callable[..., Any]) -> None:
        """Unregister `fn` from every hook and from the middleware (for tests)."""
        for registered in _hooks.values():
            while fn in registered:
                registered.remove(fn)
        while fn in _middleware:
            _middleware.remove(fn)


def middleware(fn: F) -> F:
    """Register `async def fn(ctx, call_next)` around every attempt of every task; it returns
    what `await call_next()` returns (the run function's output), or raises."""
    if not inspect.iscoroutinefunction(fn):
        raise TaskDefinitionError(f"middleware must be an `async def fn(ctx, call_next)`: {fn!r}")
    if fn not in _middleware:
        _middleware.append(fn)
    return fn


async def run_with_middleware(ctx: Any, call: Callable[[], Awaitable[Any]]) -> Any:
    """`call()` inside every registered middleware, the first registered outermost. Each
    `call_next` works once: calling the run function again in the same attempt would make its
    durable calls again under new journal keys (a step done twice)."""
    chain = list(_middleware)

    async def step(index: int) -> Any:
        if index == len(chain):
            return await call()
        called = False

        async def call_next() -> Any:
            nonlocal called
            if called:
                raise RuntimeError(
                    f"middleware {chain[index].__name__} called call_next() twice: the run "
                    "function runs once per attempt (raise to have the attempt retried)"
                )
            called = True
            return await step(index + 1)

        return await chain[index](ctx, call_next)

    return await step(0)


hooks = Hooks()
