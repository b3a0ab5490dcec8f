"""`batch`: trigger runs of different tasks together, and wait for all of them.

results = await batch.trigger_by_task_and_wait([
    {"task": resize, "payload": {"url": u}},
    {"task": transcribe, "payload": {"url": u}, "options": {"queue": "gpu"}},
])
for result in results.runs: ...          # Result each, in input order
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError, PayloadError
from conveyor.results import BatchHandle, BatchResult, RunHandle, batch_result_from
from conveyor.sdk.context import current_scope
from conveyor.sdk.idempotency import batch_key_options

if TYPE_CHECKING:
    from conveyor.sdk.task import Task


def prepare_items(items: Any) -> list[tuple[str, Any, dict[str, Any]]]:
    from conveyor.sdk.task import Task, options_for

    scope = current_scope()
    in_run = scope is not None and scope.durable is not None

    if not isinstance(items, list):
        raise PayloadError(
            "batch items must be a list of {'task': ..., 'payload': ..., 'options': {...}}"
        )
    prepared = []
    for index, item in enumerate(items):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("task"), Task)
            or set(item) - {"task", "payload", "options"}
        ):
            raise PayloadError(
                f"items[{index}] must be {{'task': <a task>, 'payload': ..., 'options': {{...}}}}"
            )
        task: Task[Any, Any] = item["task"]
        opts = options_for(item.get("options") or {}, in_run=in_run)
        prepared.append((task.id, task.prepare_payload(item.get("payload")), opts))
    return prepared


class Batch:
    async def trigger_by_task(
        self,
        items: list[dict[str, Any]],
        *,
        idempotency_key: str | None = None,
        idempotency_key_ttl: float | str | None = None,
    ) -> BatchHandle[Any]:
        """Start one run per item, each of its own task, as one batch; returns at once. With
        `idempotency_key`, a later call with the key returns this batch (`is_cached`)."""
        prepared = prepare_items(items)
        scope = current_scope()
        in_run = scope is not None and scope.durable is not None
        keyed = batch_key_options(idempotency_key, idempotency_key_ttl, in_run=in_run)
        if scope is not None and scope.durable is not None:
            answer = await scope.durable.trigger(
                "batch.trigger_by_task", "", prepared, wait=False, batch=True, **keyed
            )
            return BatchHandle(
                answer["batch_id"],
                [
                    RunHandle(r["id"], t, r.get("is_cached", False))
                    for r, (t, _, _) in zip(answer["runs"], prepared, strict=True)
                ],
                bool(answer.get("is_cached")),
            )
        from conveyor.client.default import default_client

        return await default_client().tasks.batch_trigger_by_task(
            [{"task": t, "payload": p, "options": o} for t, p, o in prepared], **keyed
        )

    async def trigger_by_task_and_wait(
        self,
        items: list[dict[str, Any]],
        *,
        idempotency_key: str | None = None,
        idempotency_key_ttl: float | str | None = None,
    ) -> BatchResult[Any]:
        """Start one run per item and wait for all of them (the run suspends meanwhile). With
        `idempotency_key`, a later call with the key waits for this batch again."""
        prepared = prepare_items(items)
        scope = current_scope()
        if scope is None or scope.durable is None:
            raise ConveyorError(
                "batch.trigger_by_task_and_wait waits durably, so it only works inside a task's "
                "run function; from a backend, trigger and then poll the runs"
            )
        keyed = batch_key_options(idempotency_key, idempotency_key_ttl, in_run=True)
        answer = await scope.durable.trigger(
            "batch.trigger_by_task_and_wait", "", prepared, wait=True, batch=True, **keyed
        )
        return batch_result_from(answer)


batch = Batch()
