"""Runs: reading them (one, a page, their attempts, logs and trace), canceling and replaying.
The routes of conveyor/server/api/runs.py and the client's `runs` namespace are this part.

Canceling is a transition of the run state machine (transitions.py); a replay is a new trigger
of the same task (tasks.py). Reading never locks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from conveyor.engine.events import Events
from conveyor.engine.tasks import Tasks
from conveyor.engine.trace import MAX_TRACE_ROWS, build_trace
from conveyor.engine.transitions import Transitions, again_after_deadlock
from conveyor.engine.views import attempt_view, json_text, log_view, run_view, wait_view
from conveyor.errors import Conflict, InvalidRequest, NotFound, PayloadError
from conveyor.metadata_ops import metadata_json
from conveyor.models import (
    FINAL_STATUSES,
    Attempt,
    LogLine,
    Run,
    RunStatus,
    Trace,
    TriggerOptions,
)
from conveyor.serialization import json_problem
from conveyor.store import Row, Store


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """A stream a run wrote (`streams.pipe`): its name, the chunks stored, whether it ended."""

    name: str
    chunks: int
    ended: bool


@dataclass(frozen=True, slots=True)
class RunPage:
    """A page of runs, newest first, and the cursors (run ids) of the pages either side."""

    runs: list[Run]
    older: str | None
    newer: str | None


def replay_item(old: Row) -> tuple[str, Any, TriggerOptions]:
    """What triggers a replay of the run `old`: its task, its payload and its options (also
    bulk replays', bulk.py)."""
    options = TriggerOptions(
        tags=json.loads(old["tags"]),
        metadata=json.loads(old["metadata"]),
        queue={"name": old["queue"]},
        concurrency_key=old["concurrency_key"],
        priority=old["priority"],
        max_attempts=old["max_attempts"],
        max_duration=old["max_duration"],
        machine=old["machine"],
    )
    return old["task_id"], json.loads(old["payload"]), options


class Runs:
    """Reading, canceling and replaying runs (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        events: Events,
        transitions: Transitions,
        tasks: Tasks,
    ) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self._transitions = transitions
        self._tasks = tasks

    def get(self, env_id: str, run_id: str, *, with_attempts: bool = False) -> Run:
        with self._store.read() as tx:
            row = tx.one("get_run", env_id=env_id, id=run_id)
            if row is None:
                raise NotFound(f"run {run_id} not found")
            attempts = tx.all("list_attempts", run_id=run_id) if with_attempts else None
            waits = (
                tx.all("waits_of_run", run_id=run_id)
                if with_attempts and row["status"] == "WAITING"
                else None
            )
        run = run_view(row)
        if attempts is not None:
            run.attempt_list = [attempt_view(a) for a in attempts]
        if waits is not None:
            run.waiting_on = [wait_view(w) for w in waits]
        return run

    def page(
        self,
        env_id: str,
        *,
        statuses: Iterable[str] = (),
        task_id: str | None = None,
        tag: str | None = None,
        created_from: float | None = None,
        created_to: float | None = None,
        limit: int = 50,
        older_than: str | None = None,
        newer_than: str | None = None,
        roots: bool = False,
    ) -> RunPage:
        """A page of runs, newest first, going either way from a run id (keyset pagination: as
        fast on the thousandth page as on the first). `older` and `newer` are the cursors of the
        neighbouring pages, None where there is none. With `roots`, only the runs no other run
        triggered. Each run says how many runs it triggered (`child_count`)."""
        statuses = list(statuses)
        for status in statuses:
            if status not in RunStatus.__members__:
                raise InvalidRequest(f"unknown status {status!r}; one of {', '.join(RunStatus)}")
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit must be between 1 and 1000")
        for cursor in (older_than, newer_than):
            if cursor is not None and not cursor.startswith("run_"):
                raise InvalidRequest("cursor must be the next_cursor of a previous page (a run id)")
        tag_pattern = None
        if tag is not None:
            escaped = json_text(tag)
            tag_pattern = "%" + escaped + "%"
        filters = {
            "env_id": env_id,
            "any_status": 1 if statuses else 0,
            "statuses": statuses or [""],
            "task_id": task_id,
            "tag": tag_pattern,
            "created_from": created_from,
            "created_to": created_to,
            "roots": 1 if roots else 0,
            "limit": limit + 1,
        }
        with self._store.read() as tx:
            if newer_than is not None:
                rows = tx.all("list_runs_newer", cursor=newer_than, **filters)
                if len(rows) <= limit:  # this reaches the newest run: that is the first page
                    return self.page(
                        env_id,
                        statuses=statuses,
                        task_id=task_id,
                        tag=tag,
                        created_from=created_from,
                        created_to=created_to,
                        limit=limit,
                        roots=roots,
                    )
                rows = rows[:limit][::-1]
                newer: str | None = rows[0]["id"]
                older = rows[-1]["id"]
            else:
                if older_than is not None:
                    rows = tx.all("list_runs_older", cursor=older_than, **filters)
                else:
                    rows = tx.all("list_runs", **filters)
                older = rows[limit - 1]["id"] if len(rows) > limit else None
                rows = rows[:limit]
                newer = rows[0]["id"] if older_than is not None and rows else None
            counts = (
                {
                    c["parent_id"]: c["children"]
                    for c in tx.all("count_children", ids=[r["id"] for r in rows])
                }
                if rows
                else {}
            )
        runs = [run_view(r) for r in rows]
        for run in runs:
            run.child_count = counts.get(run.id, 0)
        if (
            tag is not None
        ):  # LIKE over the JSON text can over-match (a tag containing the tag); be exact
            runs = [r for r in runs if tag in r.tags]
        return RunPage(runs, older, newer)

    def attempts(self, env_id: str, run_id: str) -> list[Attempt]:
        self.get(env_id, run_id)
        with self._store.read() as tx:
            return [attempt_view(a) for a in tx.all("list_attempts", run_id=run_id)]

    def trace(self, env_id: str, run_id: str) -> Trace:
        """The run's spans (attempts, steps, triggers with their child runs, waits, tokens) as a
        tree; see conveyor/engine/trace.py."""
        with self._store.read() as tx:
            row = tx.one("get_run", env_id=env_id, id=run_id)
            if row is None:
                raise NotFound(f"run {run_id} not found")
            attempts = tx.all("list_attempts", run_id=run_id)
            journal = tx.all("trace_journal", run_id=run_id, limit=MAX_TRACE_ROWS + 1)
            children = tx.all("child_runs", parent_id=run_id, limit=MAX_TRACE_ROWS + 1)
        truncated = len(journal) > MAX_TRACE_ROWS or len(children) > MAX_TRACE_ROWS
        return build_trace(
            row,
            attempts,
            journal[:MAX_TRACE_ROWS],
            children[:MAX_TRACE_ROWS],
            now=self._clock(),
            truncated=truncated,
        )

    def logs(self, env_id: str, run_id: str, limit: int = 5000) -> list[LogLine]:
        self.get(env_id, run_id)
        with self._store.read() as tx:
            return [log_view(r) for r in tx.all("list_logs", run_id=run_id, limit=limit)]

    def cancel(self, env_id: str, run_id: str) -> Run:
        """Cancel a run that has not ended, and its unfinished children. An executing attempt
        is stopped by its worker."""
        now = self._clock()
        stopped: list[str] = []

        def cancel() -> tuple[Row, set[str]]:
            stopped.clear()
            with self._store.transaction() as tx:
                tx.lock(env_id)
                row = tx.one("lock_run", env_id=env_id, id=run_id)
                if row is None:
                    raise NotFound(f"run {run_id} not found")
                status = RunStatus(row["status"])
                if status.is_final:
                    raise Conflict(
                        f"run {run_id} already ended {status.value}; "
                        "only unfinished runs can be canceled"
                    )
                envs = self._transitions.cancel(tx, row, now, stopped)
                row = tx.one("get_run", env_id=env_id, id=run_id)
            assert row is not None
            return row, envs

        row, envs = again_after_deadlock(cancel)
        for stopped_id in stopped:
            self._events.emit("stop", env_id, stopped_id)
        for env in envs:
            self._events.emit("available", env)
        self._events.changed(env_id, [run_id])
        return run_view(row)

    # -- metadata, streams and changes (realtime) -----------------------------------------------

    def update_metadata(self, env_id: str, run_id: str, metadata: Any) -> Run:
        """Replace a run's metadata from a backend (`runs.update_metadata`); its code's own
        changes go on from what they see."""
        if not isinstance(metadata, dict):
            raise InvalidRequest("metadata: must be a JSON object")
        problem = json_problem(metadata, "metadata")
        if problem:
            raise PayloadError(problem)
        text = metadata_json(metadata, f"run {run_id}")
        now = self._clock()
        with self._store.transaction() as tx:
            if tx.one("get_run", env_id=env_id, id=run_id) is None:
                raise NotFound(f"run {run_id} not found")
            tx.run("set_run_metadata", id=run_id, metadata=text, now=now)
            row = tx.one("get_run", env_id=env_id, id=run_id)
        assert row is not None
        self._events.changed(env_id, [run_id])
        return run_view(row)

    def stream(
        self, env_id: str, run_id: str, name: str, *, after: int = -1, limit: int = 1000
    ) -> tuple[list[tuple[int, Any]], bool]:
        """The chunks of a run's stream numbered after `after`, in order, as (number, value),
        and whether the stream has ended (its last chunk is among them or before)."""
        with self._store.read() as tx:
            if tx.one("get_run", env_id=env_id, id=run_id) is None:
                raise NotFound(f"run {run_id} not found")
            rows = tx.all("stream_chunks", run_id=run_id, name=name, after=after, limit=limit)
        chunks = [(int(r["seq"]), json.loads(r["chunk"])) for r in rows if not r["done"]]
        return chunks, any(r["done"] for r in rows)

    def streams(self, env_id: str, run_id: str) -> list[StreamInfo]:
        """The streams a run wrote, in the order it began them, with their size so far."""
        with self._store.read() as tx:
            if tx.one("get_run", env_id=env_id, id=run_id) is None:
                raise NotFound(f"run {run_id} not found")
            rows = tx.all("run_streams", run_id=run_id)
        return [StreamInfo(str(r["name"]), int(r["chunks"]), bool(r["ended"])) for r in rows]

    def many(self, run_ids: list[str]) -> list[Run]:
        """The runs of `run_ids` that exist, whatever their environment (for a server's live
        subscribers, which checked the environment when they subscribed)."""
        if not run_ids:
            return []
        with self._store.read() as tx:
            rows = tx.all("get_runs_by_id", ids=run_ids)
        return [run_view(r) for r in rows]

    def stamps(self, run_ids: list[str]) -> dict[str, float]:
        """When each of `run_ids` last changed (its updated_at), one cheap read for many."""
        if not run_ids:
            return {}
        with self._store.read() as tx:
            rows = tx.all("run_stamps", ids=run_ids)
        return {r["id"]: r["updated_at"] for r in rows}

    def batch_progress(self, env_id: str, batch_id: str) -> tuple[int, int]:
        """(runs of the batch, runs of it that have ended)."""
        with self._store.read() as tx:
            row = tx.one(
                "batch_progress", env_id=env_id, batch_id=batch_id, finals=list(FINAL_STATUSES)
            )
        return (int(row["total"] or 0), int(row["ended"] or 0)) if row else (0, 0)

    def changed_since(
        self,
        env_id: str,
        since: float,
        *,
        tag: str | None = None,
        batch_id: str | None = None,
        limit: int = 500,
    ) -> list[Run]:
        """Runs with `tag` (or of `batch_id`) changed after `since` (their updated_at), oldest
        change first: what a subscriber to the tag or batch has not seen."""
        if (tag is None) == (batch_id is None):
            raise InvalidRequest("give a tag or a batch_id")
        with self._store.read() as tx:
            if batch_id is not None:
                rows = tx.all(
                    "batch_runs_changed_since",
                    env_id=env_id,
                    batch_id=batch_id,
                    since=since,
                    limit=limit,
                )
            else:
                rows = tx.all(
                    "tagged_runs_changed_since",
                    env_id=env_id,
                    tag="%" + json_text(tag) + "%",
                    since=since,
                    limit=limit,
                )
        return [run_view(r) for r in rows]

    def replay(
        self, env_id: str, run_id: str, payload: Any = None, *, use_payload: bool = False
    ) -> Run:
        """A new run of the same task with the same payload (or `payload`) and options."""
        with self._store.read() as tx:
            old = tx.one("get_run", env_id=env_id, id=run_id)
        if old is None:
            raise NotFound(f"run {run_id} not found")
        task_id, old_payload, options = replay_item(old)
        new_payload = payload if use_payload else old_payload
        return self._tasks.batch_trigger(
            env_id,
            [(task_id, new_payload, options)],
            parent_id=old["parent_id"],
            record_batch=False,
            replayed_from=run_id,
        ).runs[0]

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    def list(
        self,
        env_id: str,
        *,
        statuses: Iterable[str] = (),
        task_id: str | None = None,
        tag: str | None = None,
        created_from: float | None = None,
        created_to: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
        roots: bool = False,
    ) -> tuple[list[Run], str | None]:
        """A page of runs, newest first: those older than `cursor` (a run id), and the cursor of
        the next page (None on the last)."""
        page = self.page(
            env_id,
            statuses=statuses,
            task_id=task_id,
            tag=tag,
            created_from=created_from,
            created_to=created_to,
            limit=limit,
            older_than=cursor,
            roots=roots,
        )
        return page.runs, page.older
