"""`idempotency_keys`: what a trigger (or a token) with the same key dedupes against.

    from conveyor import idempotency_keys

    key = idempotency_keys.create("charge-42")                  # inside a run: this run's
    key = idempotency_keys.create("charge-42", scope="attempt") # this attempt's only
    key = idempotency_keys.create("charge-42", scope="global")  # every trigger in the environment
    await charge.trigger(payload, idempotency_key=key)
    await idempotency_keys.reset("charge", key)                 # the next trigger makes a new run
    await charge.batch_trigger(items, idempotency_key="charges-42")  # a whole batch's key
    await idempotency_keys.reset_batch("charges-42")            # the next call makes a new batch

A plain string given as `idempotency_key` inside a run is scoped to that run (two parents that
trigger a child with the same string get a child each); from a backend it is global. A key is
released when its run ends in a failure status or is canceled (docs/triggering.md has the table).
A batch's key follows the same scopes; engine/batches.py says how long it holds its batch.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any, Literal

from conveyor.durations import parse_duration
from conveyor.errors import InvalidRequest
from conveyor.sdk.context import current_scope

Scope = Literal["run", "attempt", "global"]
SCOPES: tuple[Scope, ...] = ("run", "attempt", "global")


class IdempotencyKey(str):
    """A key made by `idempotency_keys.create`: its scope is in it, so it is used as it is."""

    __slots__ = ()


def make_key(key: str | Sequence[str], *, scope: Scope = "run") -> IdempotencyKey:
    """The idempotency key `key` (text, or a list of parts joined by "-") in `scope`: "run" (this
    run, across its attempts), "attempt" (this attempt only) or "global" (the environment).
    Outside a run every scope is global."""
    if isinstance(key, str):
        text = key
    elif isinstance(key, Sequence) and key and all(isinstance(k, str) for k in key):
        text = "-".join(key)
    else:
        raise InvalidRequest(f"an idempotency key is text or a list of text, got {key!r}")
    if not text:
        raise InvalidRequest("an idempotency key is non-empty text")
    if scope not in SCOPES:
        raise InvalidRequest(f"scope: one of {', '.join(SCOPES)}, got {scope!r}")
    run = current_scope()
    if scope == "global" or run is None:
        return IdempotencyKey(text)
    parts: list[Any] = [scope, run.ctx.run.id]
    if scope == "attempt":
        parts.append(run.ctx.attempt.number)
    parts.append(text)
    digest = hashlib.sha256(json.dumps(parts).encode()).hexdigest()
    return IdempotencyKey(f"{scope}:{digest}")


_MADE = re.compile(r"(run|attempt):[0-9a-f]{64}")  # a run or attempt key, also after JSON


def scoped(key: Any) -> Any:
    """`key` as a trigger or token made here uses it: a plain string inside a run is this run's
    (see the module docstring); a created key, or anything else, is left as it is. A run or
    attempt key passed on as text (in a payload, a step's result) is still recognised; a global
    key is plain text, so create it where it is used."""
    if isinstance(key, str) and not isinstance(key, IdempotencyKey) and key:
        if _MADE.fullmatch(key):
            return key
        return make_key(key, scope="run")
    return key


def batch_key_options(key: Any, ttl: Any, *, in_run: bool) -> dict[str, Any]:
    """A batch call's own `idempotency_key` and `idempotency_key_ttl` as the engine takes them
    ({} without a key). Inside a run a plain string is this run's, as for a trigger, and the
    TTL is seconds; from a backend both go as given, and the server checks them."""
    if key is None:  # a TTL alone has no effect, as a trigger's
        return {}
    if not isinstance(key, str) or not key:
        raise InvalidRequest(f"a batch's idempotency_key is non-empty text, got {key!r}")
    if not in_run:
        return {"idempotency_key": str(key), "idempotency_key_ttl": ttl}
    seconds = None
    if ttl is not None:
        try:
            seconds = parse_duration(ttl, name="idempotency_key_ttl")
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
    return {"idempotency_key": str(scoped(key)), "idempotency_key_ttl": seconds}


class IdempotencyKeys:
    """`conveyor.idempotency_keys` (see the module docstring)."""

    Key = IdempotencyKey

    def create(self, key: str | Sequence[str], *, scope: Scope = "run") -> IdempotencyKey:
        """The idempotency key `key` (text, or a list of parts joined by "-") in `scope`: "run"
        (this run, across its attempts), "attempt" (this attempt only) or "global" (the
        environment). Outside a run every scope is global."""
        return make_key(key, scope=scope)

    async def reset(self, task_id: str, key: str) -> bool:
        """Release `key` for `task_id` now (a plain string inside a run is this run's): the next
        trigger with it makes a new run. Whether a run held it."""
        from conveyor.client.default import default_client

        return await default_client().idempotency_keys.reset(task_id, scoped(key))

    async def reset_batch(self, key: str) -> bool:
        """Release a batch's `key` (a plain string inside a run is this run's): the next batch
        call with it makes a new batch. Whether a batch held it."""
        from conveyor.client.default import default_client

        return await default_client().idempotency_keys.reset_batch(scoped(key))


idempotency_keys = IdempotencyKeys()
