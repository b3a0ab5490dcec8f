"""Bulk actions: canceling or replaying every run that matches filters (status, task, tag,
version, creation time), for `runs.bulk_cancel` and `runs.bulk_replay`. The routes of
conveyor/server/api/bulk.py and the client's `bulk_actions` namespace are this part.

Making an action is one short transaction that records its filters and its bound: it sees only
runs made at or before it was (the runs its replays make are never replayed again). The tick
then handles its runs a chunk at a time, oldest first, each chunk one transaction that locks the
action's row (another server's tick skips it), changes the chunk's runs through the run state
machine and moves the action's cursor and counts, all committed together. So no transaction
holds more than a chunk, an interrupted server leaves the action where its last chunk committed,
and no run is canceled or replayed twice. It must never change a run outside a chunk.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from conveyor.durations import parse_duration
from conveyor.engine.events import Events
from conveyor.engine.runs import replay_item
from conveyor.engine.transitions import Transitions, again_after_deadlock
from conveyor.engine.views import json_text, moment
from conveyor.errors import Conflict, ConveyorError, InvalidRequest, NotFound
from conveyor.ids import new_id
from conveyor.models import FINAL_STATUSES, BulkAction, BulkFilters, RunStatus
from conveyor.store import Row, Store, Tx

BulkKind = Literal["cancel", "replay"]
CHUNK = 250  # runs per transaction at most
CHUNK_SECONDS = 0.5  # ... and a chunk ends early past this, so no lock is held for long
IDLE_RETRY = 0.05  # seconds before a server looks again at actions another server is handling
TICK_BUDGET = 0.5  # seconds of chunks one tick spends before the tick's other work goes on
MATCHED = ("statuses", "task_id", "tag", "version", "created_from", "created_to")
UNFINISHED = [s.value for s in RunStatus if s not in FINAL_STATUSES]
NO_FILTER = (
    "give at least one filter (status, task, tag, version, created_from, created_to or since), "
    "or all=true to act on every run of the environment"
)


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:  # the API speaks UTC; a bare datetime is read as UTC
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _stored_filters(kind: BulkKind, filters: BulkFilters, now: float) -> dict[str, Any]:
    """The filters as the action keeps them: `since` made a time, statuses checked for `kind`."""
    if not filters.given() and not filters.all:
        raise InvalidRequest(NO_FILTER)
    statuses = [s.value for s in filters.status or ()]
    if kind == "cancel":
        ended = [s for s in statuses if s not in UNFINISHED]
        if ended and len(ended) == len(statuses):
            raise InvalidRequest(
                f"status: {', '.join(ended)} runs have ended and cannot be canceled; "
                f"only unfinished runs can ({', '.join(UNFINISHED)})"
            )
    request = filters.model_dump(mode="json", exclude_defaults=True)
    created_from = _epoch(filters.created_from)
    if filters.since is not None:
        request["since"] = parse_duration(filters.since, name="since")  # "1h" is 3600
        since = now - request["since"]
        created_from = since if created_from is None else max(created_from, since)
    created_to = _epoch(filters.created_to)
    if created_from is not None and created_to is not None and created_to <= created_from:
        raise InvalidRequest("created_to must be after created_from")
    return {
        "statuses": statuses,
        "task_id": filters.task,
        "tag": filters.tag,
        "version": filters.version,
        "created_from": created_from,
        "created_to": created_to,
        # the filters as asked, which an idempotency key compares (`since` stays a duration)
        "request": request,
    }


def _query_params(kind: str, stored: dict[str, Any]) -> dict[str, Any]:
    """The parameters of the queries of the runs an action matches: a cancel only ever sees
    unfinished runs, so it never walks the history of ended ones."""
    statuses = list(stored["statuses"])
    if kind == "cancel":
        statuses = [s for s in statuses if s in UNFINISHED] if statuses else list(UNFINISHED)
    tag = stored["tag"]
    return {
        "any_status": 1 if statuses else 0,
        "statuses": statuses or [""],
        "task_id": stored["task_id"],
        "tag": None if tag is None else "%" + json_text(tag) + "%",
        "version": stored["version"],
        "created_from": stored["created_from"],
        "created_to": stored["created_to"],
    }


def action_view(row: Row, *, is_cached: bool = False) -> BulkAction:
    stored = json.loads(row["filters"])
    filters = BulkFilters(
        status=stored["statuses"] or None,
        task=stored["task_id"],
        tag=stored["tag"],
        version=stored["version"],
        created_from=moment(stored["created_from"]),
        created_to=moment(stored["created_to"]),
        all=not any(stored[name] for name in MATCHED),
    )
    return BulkAction(
        id=row["id"],
        kind=row["kind"],
        status=row["status"],
        filters=filters,
        total=row["total"],
        done=row["done"],
        skipped=row["skipped"],
        failed=row["failed"],
        error=row["error"],
        chunks=row["chunks"],
        idempotency_key=row["idempotency_key"],
        is_cached=is_cached,
        created_at=moment(row["created_at"]),
        updated_at=moment(row["updated_at"]),
        completed_at=moment(row["completed_at"]),
    )


class _Chunk:
    """What one chunk did, told to the event bus after its commit."""

    def __init__(self) -> None:
        self.done = self.skipped = self.failed = 0
        self.error: str | None = None
        self.stopped: list[str] = []
        self.changed: list[str] = []
        self.envs: set[str] = set()


class Bulk:
    """Bulk cancels and replays (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        events: Events,
        transitions: Transitions,
        chunk: int = CHUNK,
        chunk_seconds: float = CHUNK_SECONDS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self._transitions = transitions
        self.chunk = chunk
        self.chunk_seconds = chunk_seconds

    def count(self, env_id: str, kind: BulkKind, filters: BulkFilters) -> int:
        """How many runs an action of `kind` with `filters` would act on now."""
        now = self._clock()
        stored = _stored_filters(kind, filters, now)
        with self._store.read() as tx:
            return self._count(tx, env_id, kind, stored, now)

    def _count(self, tx: Tx, env_id: str, kind: str, stored: dict[str, Any], upto: float) -> int:
        row = tx.one(
            "count_bulk_action_runs", env_id=env_id, upto=upto, **_query_params(kind, stored)
        )
        return int(row["n"]) if row else 0

    def create(
        self,
        env_id: str,
        kind: BulkKind,
        filters: BulkFilters,
        *,
        idempotency_key: str | None = None,
    ) -> BulkAction:
        """Make an action that cancels (or replays) every run matching `filters` made by now;
        the tick carries it out. The same `idempotency_key` again returns the action it made
        (`is_cached`), and makes nothing."""
        if kind not in ("cancel", "replay"):
            raise InvalidRequest(f"kind must be cancel or replay, not {kind!r}")
        if idempotency_key is not None and not (0 < len(idempotency_key) <= 256):
            raise InvalidRequest("idempotency_key: from 1 to 256 characters")
        now = self._clock()
        stored = _stored_filters(kind, filters, now)
        text = json_text(stored)
        action_id = new_id("bulk", now)
        with self._store.transaction() as tx:
            if idempotency_key is not None:
                held = tx.one("find_bulk_action_by_key", env_id=env_id, key=idempotency_key)
                if held is not None:
                    return self._cached(held, kind, text)
            total = self._count(tx, env_id, kind, stored, now)
            tx.run(
                "insert_bulk_action",
                id=action_id,
                env_id=env_id,
                kind=kind,
                filters=text,
                now=now,
                total=total,
                idempotency_key=idempotency_key,
            )
            row = tx.one("get_bulk_action", env_id=env_id, id=action_id)
            if row is None:  # another request took the key between our read and insert
                held = tx.one("find_bulk_action_by_key", env_id=env_id, key=idempotency_key)
                assert held is not None
                return self._cached(held, kind, text)
        return action_view(row)

    @staticmethod
    def _cached(held: Row, kind: str, filters: str) -> BulkAction:
        asked = json.loads(filters)["request"]
        if held["kind"] != kind or json.loads(held["filters"]).get("request") != asked:
            raise Conflict(
                f"idempotency key {held['idempotency_key']!r} is held by bulk action "
                f"{held['id']} ({held['kind']} with other filters); use another key"
            )
        return action_view(held, is_cached=True)

    def get(self, env_id: str, action_id: str) -> BulkAction:
        with self._store.read() as tx:
            row = tx.one("get_bulk_action", env_id=env_id, id=action_id)
        if row is None:
            raise NotFound(f"bulk action {action_id} not found")
        return action_view(row)

    def stop(self, env_id: str, action_id: str) -> BulkAction:
        """Stop a running action: the runs it has handled stay handled, the others are left as
        they are. Conflict once it has ended."""
        now = self._clock()
        with self._store.transaction() as tx:
            stopped = tx.run("stop_bulk_action", env_id=env_id, id=action_id, now=now)
            row = tx.one("get_bulk_action", env_id=env_id, id=action_id)
        if row is None:
            raise NotFound(f"bulk action {action_id} not found")
        if not stopped:
            raise Conflict(f"bulk action {action_id} already ended {row['status']}")
        return action_view(row)

    # -- carrying actions out, from the tick ----------------------------------------------

    def advance(self, budget: float = TICK_BUDGET) -> float | None:
        """Handle chunks of the running actions for about `budget` seconds, each chunk its own
        transaction; safe from several servers at once. Returns when the next chunk is due by
        the clock (None: no action is running)."""
        deadline = time.monotonic() + budget
        with self._store.read() as tx:
            ids = [r["id"] for r in tx.all("running_bulk_actions", now=self._clock())]
        moved = False  # whether this server handled a chunk: else another holds the actions
        for action_id in ids:
            while time.monotonic() < deadline:
                more = self.step(action_id)
                moved = moved or more
                if not more:
                    break
        with self._store.read() as tx:
            row = tx.one("next_bulk_action")
        if row is None or row["created_at"] is None:
            return None
        # at once while this server has chunks to handle; a little later while another server
        # handles them. The chunks of an action made at this very clock reading wait until the
        # clock has moved past it: its bound must lie before any run its replays make
        now = self._clock()
        return max(now if moved else now + IDLE_RETRY, float(row["created_at"]) + 0.001)

    def step(self, action_id: str) -> bool:
        """Handle the action's next chunk in one transaction; whether it has runs left (False
        too when another server is handling its chunk now, or it has ended)."""
        done = _Chunk()
        env_id: str | None = None

        def chunk() -> bool:
            nonlocal done, env_id
            done = _Chunk()
            now = self._clock()
            with self._store.transaction() as tx:
                action = tx.one("claim_bulk_action", id=action_id)
                if action is None or action["created_at"] >= now:
                    return False
                env_id = action["env_id"]
                tx.lock(action["env_id"])  # as a single cancel or trigger: runs change in turns
                more = self._chunk(tx, action, now, done)
            return more

        more = again_after_deadlock(chunk)
        if env_id is not None:
            for run_id in done.stopped:
                self._events.emit("stop", env_id, run_id)
            self._events.available(done.envs)
            if done.changed:
                self._events.changed(env_id, done.changed)
        return more

    def _chunk(self, tx: Tx, action: Row, now: float, done: _Chunk) -> bool:
        env_id, kind = action["env_id"], action["kind"]
        stored = json.loads(action["filters"])
        rows = tx.all(
            "bulk_action_runs",
            env_id=env_id,
            after=action["cursor"],
            upto=action["upto"],
            limit=self.chunk,
            **_query_params(kind, stored),
        )
        tag = stored["tag"]
        cursor = action["cursor"]
        started = time.monotonic()
        cut = False  # the chunk took long: the rest of its rows are the next chunk's
        for index, row in enumerate(rows):
            if index and time.monotonic() - started > self.chunk_seconds:
                cut = True
                break
            cursor = row["id"]
            if tag is not None and tag not in json.loads(row["tags"]):
                continue  # LIKE over the JSON text over-matches a tag holding the tag
            if kind == "cancel":
                self._cancel(tx, row, now, done)
            else:
                self._replay(tx, env_id, row, now, done)
        more = cut or len(rows) == self.chunk
        tx.run(
            "advance_bulk_action",
            id=action["id"],
            cursor=cursor,
            done=done.done,
            skipped=done.skipped,
            failed=done.failed,
            error=done.error,
            status="RUNNING" if more else "COMPLETED",
            completed_at=None if more else now,
            now=now,
        )
        return more

    def _cancel(self, tx: Tx, row: Row, now: float, done: _Chunk) -> None:
        # read again under its lock: a lease, a finish or a parent's cancel may have come first
        locked = tx.one("lock_run", env_id=row["env_id"], id=row["id"])
        if locked is None or RunStatus(locked["status"]).is_final:
            done.skipped += 1
            return
        done.envs |= self._transitions.cancel(tx, locked, now, done.stopped)
        done.done += 1
        done.changed.append(row["id"])

    def _replay(self, tx: Tx, env_id: str, row: Row, now: float, done: _Chunk) -> None:
        parent = tx.one("get_run_by_id", id=row["parent_id"]) if row["parent_id"] else None
        env = tx.one("get_environment", id=env_id)
        try:
            runs, queued = self._transitions.create_runs(
                tx,
                env_id,
                [replay_item(row)],
                now=now,
                parent=parent,
                batch_id=None,
                replayed_from=row["id"],
                deployed=env is not None and env["kind"] != "dev",
            )
        except ConveyorError as exc:  # refused before anything was written (a task gone, ...)
            done.failed += 1
            done.error = f"run {row['id']}: {exc}"
            return
        done.done += 1
        done.changed.append(runs[0].id)
        if queued:
            done.envs.add(env_id)

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    def list(self, env_id: str, *, limit: int = 20) -> list[BulkAction]:
        """The environment's bulk actions, newest first."""
        if not 1 <= limit <= 100:
            raise InvalidRequest("limit must be between 1 and 100")
        with self._store.read() as tx:
            rows = tx.all("list_bulk_actions", env_id=env_id, limit=limit)
        return [action_view(r) for r in rows]
