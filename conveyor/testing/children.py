"""The runs a run triggers in the test's world (memory.py): one child or a batch, waited for or
not, journaled under the call's key. A retry whose earlier attempt's children failed triggers
those again and keeps the others, and a batch's idempotency key answers the batch that holds it
(held for its ttl, released by a failed run), as the engine does (engine/durable.py,
engine/batches.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.errors import Conflict, InvalidRequest
from conveyor.models import RunStatus, TriggerOptions
from conveyor.testing.records import JournalRecord, RunState, as_stored
from conveyor.testing.tokens import KEY_TTL

if TYPE_CHECKING:
    from conveyor.testing.memory import World


class Children:
    """The world's child runs and batches, and the batches' idempotency keys."""

    def __init__(self, world: World) -> None:
        self.world = world
        # a batch's idempotency key: (its batch id, its run ids, until when it holds)
        self.batch_keys: dict[str, tuple[str, list[str], float]] = {}

    def trigger(
        self,
        parent: RunState,
        key: str,
        items: list[tuple[str, Any, dict[str, Any]]],
        *,
        wait: bool,
        batch: bool,
        again: JournalRecord | None = None,
        idempotency_key: str | None = None,
        idempotency_key_ttl: float | None = None,
    ) -> JournalRecord:
        """`again`: the journaled call of an earlier attempt whose children failed; those are
        triggered again, the others kept (as the engine does on a retry). A batch's
        `idempotency_key` answers the batch holding it, as engine/batches.py does."""
        world = self.world
        options = []
        for index, (_, _, raw) in enumerate(items):
            try:
                options.append(TriggerOptions.model_validate(raw))
            except ValueError as exc:
                raise InvalidRequest(f"items[{index}]: invalid trigger options: {exc}") from exc
        batch_id = world.new_id("batch") if batch else None
        waitpoint = None
        if wait:
            waitpoint = world.new_waitpoint("batch" if batch else "run")
        kept: list[str | None] = [None] * len(items)
        if again is not None and again.waitpoint is not None:
            before = again.waitpoint.run_ids
            if len(before) == len(items) and all(
                world.runs[r].task_id == item[0] for r, item in zip(before, items, strict=True)
            ):  # the same call: only its failed children again
                kept = [r if world.runs[r].result().get("ok") else None for r in before]
            del parent.journal[key]  # answered anew below
        cached: bool | None = None
        from_key: list[str | None] = [None] * len(items)
        if idempotency_key is not None and batch_id is not None:
            held_batch, from_key, cached = self._batch_key(idempotency_key, items)
            batch_id = held_batch or batch_id
            kept = [k if k is not None else h for k, h in zip(kept, from_key, strict=True)]
        children = []
        for (task_id, payload, _), opts, old, held in zip(
            items, options, kept, from_key, strict=True
        ):
            if old is not None:
                children.append((world.runs[old], held is not None))
                continue
            children.append(
                world.create_run(
                    task_id, as_stored(payload), opts, parent=parent, batch_id=batch_id
                )
            )
        answer: dict[str, Any] = {
            "runs": [{"id": r.id, "is_cached": cached} for r, cached in children],
            "batch_id": batch_id,
        }
        if cached is not None:
            answer["is_cached"] = cached
        if cached is False and idempotency_key is not None and batch_id is not None:
            ttl = idempotency_key_ttl if idempotency_key_ttl is not None else KEY_TTL
            self.batch_keys[idempotency_key] = (
                batch_id,
                [r.id for r, _ in children],
                world.now + ttl,
            )
        if waitpoint is not None:
            waitpoint.run_ids = [r.id for r, _ in children]
            if all(r.finished for r, _ in children):
                world.complete_run_waitpoint(waitpoint)
        world.journal(parent, key, answer, waitpoint)
        return parent.journal[key]

    def _batch_key(
        self, key: str, items: list[tuple[str, Any, dict[str, Any]]]
    ) -> tuple[str | None, list[str | None], bool]:
        """The batch a batch's idempotency key holds: (its id when it is the answer as it is,
        else None; per item the run kept from it; whether it is the answer as it is)."""
        none: list[str | None] = [None] * len(items)
        held = self.batch_keys.get(key)
        if held is None or held[2] <= self.world.now:
            return None, none, False
        batch_id, run_ids, _ = held
        runs = [self.world.runs[r] for r in run_ids]
        if [r.task_id for r in runs] != [item[0] for item in items]:
            raise Conflict(
                f"this batch idempotency key belongs to batch {batch_id}, of other tasks or "
                "another number of runs: a key names one batch, so give these items a key of "
                "their own (or release it with idempotency_keys.reset_batch(key))"
            )
        failed = [r.finished and r.status != RunStatus.COMPLETED for r in runs]
        if not any(failed):
            return batch_id, list(run_ids), True
        return None, [None if f else r for f, r in zip(failed, run_ids, strict=True)], False
