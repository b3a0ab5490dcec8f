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
nothing else. They run outside the middleware (a middleware's ContextVars are not set
there). Middleware run in the order they were registered, the first outermost, inside the
attempt: what one sets in a `contextvars.ContextVar` before `call_next()` is what the run
function reads (a database connection per run, a tracing span). Register both at import time,
in a module of the project's task directories, so every worker process has them.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from conveyor.errors import TaskDefinitionError

HOOK_NAMES = ("on_start", "on_success", "on_failure", "on_cancel")

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
