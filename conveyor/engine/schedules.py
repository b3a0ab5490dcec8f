"""Schedules: cron schedules that trigger scheduled tasks. The routes of
conveyor/server/api/schedules.py and the client's `schedules` namespace are this part.

A schedule is a row with its next fire time (`next_at`, exact to the second). Firing claims the
row (schedule, fire time) in schedule_fires and makes the run in the same transaction, under the
environment's lock: a fire time makes one run however many servers tick and however often they
restart, with no leader to elect. The run of a fire time close enough (LOOKAHEAD) is made ahead
and waits DELAYED until that time, so ten thousand schedules of one minute are queued on the
second rather than over the seconds it takes to insert them. A schedule that skips overlapping
runs decides at its time, not ahead.

Policies: `catch_up="latest"` (after downtime, one run for the most recent missed time) or
`"none"` (a time missed by more than MISSED_AFTER makes no run); `overlap="allow"` or `"skip"`
(no run while the schedule's previous run has not ended; the fire is recorded as skipped).

Declarative schedules (`@schedules.task(cron=...)`) follow the code: `Transitions.put_tasks`
keeps them in step at every load and deploy. In a dev environment schedules fire only while a
worker of it is alive (while `conveyor dev` runs), and never catch up: a time missed by more
than MISSED_AFTER (dev stopped, the laptop asleep) makes no run, whatever the policy.

A fire that made a run is kept as long as runs are (it is the run's history and what makes the
time fire once); a skipped or failed fire is kept for KEEP_FIRES_WITHOUT_RUNS.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from conveyor.cron import Cron, CronError, iso
from conveyor.engine.events import Events
from conveyor.engine.schedule_rows import UPCOMING, fire_view, schedule_view
from conveyor.engine.transitions import Transitions, why_missing
from conveyor.errors import Conflict, InvalidRequest, NotFound
from conveyor.ids import new_id
from conveyor.models import (
    RunStatus,
    Schedule,
    TaskDefinition,
    TriggerOptions,
)
from conveyor.store import Row, Store, Tx

LOOKAHEAD = 10.0  # seconds: a fire time this close has its run made ahead, DELAYED until then
MISSED_AFTER = 60.0  # catch_up="none": a fire time this far behind when reached was missed
KEEP_FIRES_WITHOUT_RUNS = 7 * 86400.0  # skipped and failed fires are history for a week
FIRE_BATCH = 500  # schedules fired per transaction
MAX_TEXT = 256  # external_id and deduplication_key
CATCH_UP = ("latest", "none")
OVERLAP = ("allow", "skip")


class Schedules:
    """Cron schedules of scheduled tasks (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        events: Events,
        transitions: Transitions,
        timeout: float,
    ) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self._transitions = transitions
        self._timeout = timeout  # a dev worker not heard of for this long is not running

    # -- changing schedules -----------------------------------------------------------------

    def create(
        self,
        env_id: str,
        *,
        task: str,
        cron: str,
        timezone: str = "UTC",
        external_id: str | None = None,
        deduplication_key: str | None = None,
        active: bool = True,
        catch_up: str = "latest",
        overlap: str = "allow",
    ) -> Schedule:
        """An imperative schedule of a scheduled task. With a `deduplication_key` held by a
        schedule already, that schedule is updated to these settings and returned instead, so
        creating is idempotent."""
        spec = _cron(cron, timezone)
        _check_choice("catch_up", catch_up, CATCH_UP)
        _check_choice("overlap", overlap, OVERLAP)
        _check_text("external_id", external_id)
        _check_text("deduplication_key", deduplication_key)
        if not isinstance(active, bool):
            raise InvalidRequest(f"active: must be true or false, got {active!r}")
        now = self._clock()
        with self._store.transaction() as tx:
            tx.lock(env_id)
            self._check_task(tx, env_id, task)
            held = (
                tx.one("find_schedule_by_dedup", env_id=env_id, key=deduplication_key)
                if deduplication_key is not None
                else None
            )
            if held is not None:
                changes = {
                    "task_id": task,
                    "cron": spec.expression,
                    "timezone": spec.timezone,
                    "external_id": external_id,
                    "catch_up": catch_up,
                    "overlap": overlap,
                    "active": int(active),
                }
                self._change(tx, held, changes, now)
                schedule_id = held["id"]
            else:
                schedule_id = new_id("sched", now)
                tx.run(
                    "insert_schedule",
                    id=schedule_id,
                    env_id=env_id,
                    task_id=task,
                    kind="IMPERATIVE",
                    cron=spec.expression,
                    timezone=spec.timezone,
                    external_id=external_id,
                    deduplication_key=deduplication_key,
                    active=int(active),
                    catch_up=catch_up,
                    overlap=overlap,
                    next_at=spec.next_after(now) if active else None,
                    now=now,
                )
            row = tx.one("get_schedule", env_id=env_id, id=schedule_id)
        assert row is not None
        return schedule_view(row, now)

    def update(self, env_id: str, schedule_id: str, **changes: Any) -> Schedule:
        """Change an imperative schedule: any of task, cron, timezone, external_id, catch_up,
        overlap. A declarative schedule changes with its code."""
        allowed = {"task", "cron", "timezone", "external_id", "catch_up", "overlap"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise InvalidRequest(f"{unknown[0]}: not a setting of a schedule")
        now = self._clock()
        with self._store.transaction() as tx:
            tx.lock(env_id)
            row = self._get(tx, env_id, schedule_id)
            if row["kind"] == "DECLARATIVE":
                raise Conflict(
                    f"schedule {schedule_id} is declared in the code of task {row['task_id']!r}; "
                    "change its @schedules.task(cron=...) and reload or deploy"
                )
            merged = {
                "task_id": changes.get("task", row["task_id"]),
                "cron": changes.get("cron", row["cron"]),
                "timezone": changes.get("timezone", row["timezone"]),
                "external_id": changes.get("external_id", row["external_id"]),
                "catch_up": changes.get("catch_up", row["catch_up"]),
                "overlap": changes.get("overlap", row["overlap"]),
                "active": row["active"],
            }
            spec = _cron(merged["cron"], merged["timezone"])
            merged["cron"], merged["timezone"] = spec.expression, spec.timezone
            _check_choice("catch_up", merged["catch_up"], CATCH_UP)
            _check_choice("overlap", merged["overlap"], OVERLAP)
            _check_text("external_id", merged["external_id"])
            if merged["task_id"] != row["task_id"]:
                self._check_task(tx, env_id, merged["task_id"])
            self._change(tx, row, merged, now)
            row = self._get(tx, env_id, schedule_id)
        return schedule_view(row, now)

    def activate(self, env_id: str, schedule_id: str) -> Schedule:
        """Fire again from the next fire time (times passed while inactive are not caught up)."""
        return self._set_active(env_id, schedule_id, True)

    def deactivate(self, env_id: str, schedule_id: str) -> Schedule:
        """Stop firing; a run made ahead for a time still to come is canceled."""
        return self._set_active(env_id, schedule_id, False)

    def delete(self, env_id: str, schedule_id: str) -> Schedule:
        """Remove an imperative schedule (returned as it was); a run made ahead for a time to
        come is canceled. Runs it made stay."""
        now = self._clock()
        with self._store.transaction() as tx:
            tx.lock(env_id)
            row = self._get(tx, env_id, schedule_id)
            if row["kind"] == "DECLARATIVE":
                raise Conflict(
                    f"schedule {schedule_id} is declared in the code of task {row['task_id']!r}; "
                    "remove its cron from @schedules.task and reload or deploy"
                )
            self._cancel_ahead(tx, row, now)
            tx.run("delete_schedule", id=schedule_id)
        return schedule_view(row, now)

    def _set_active(self, env_id: str, schedule_id: str, active: bool) -> Schedule:
        now = self._clock()
        with self._store.transaction() as tx:
            tx.lock(env_id)
            row = self._get(tx, env_id, schedule_id)
            if bool(row["active"]) != active:
                self._change(tx, row, {**_settings(row), "active": int(active)}, now)
                row = self._get(tx, env_id, schedule_id)
        return schedule_view(row, now)

    def _change(self, tx: Tx, row: Row, settings: dict[str, Any], now: float) -> None:
        """Write new settings; the next fire time is computed again when the cron, time zone or
        activity changed, and a run made ahead for a time no longer wanted is canceled."""
        timing = (settings["cron"], settings["timezone"], bool(settings["active"]))
        next_at = row["next_at"]
        if timing != (row["cron"], row["timezone"], bool(row["active"])) or (
            settings["task_id"] != row["task_id"]
        ):
            self._cancel_ahead(tx, row, now)
            spec = Cron(settings["cron"], settings["timezone"])
            next_at = spec.next_after(now) if settings["active"] else None
        tx.run("update_schedule", id=row["id"], next_at=next_at, now=now, **settings)

    def _cancel_ahead(self, tx: Tx, row: Row, now: float) -> None:
        """Cancel the runs made ahead for fire times still to come (DELAYED: none executes); the
        schedule's last fire is then the last one that did happen."""
        canceled = tx.all("runs_waiting_for_fire_time", schedule_id=row["id"], now=now)
        for run in canceled:
            self._transitions.cancel(tx, run, now, [])
            tx.run("delete_schedule_fire", schedule_id=row["id"], fire_at=run["fire_at"])
        if canceled:
            last = tx.one("last_fire_with_run", schedule_id=row["id"])
            tx.run(
                "set_schedule_last_fire",
                id=row["id"],
                last_at=last["fire_at"] if last else None,
                run_id=last["run_id"] if last else None,
            )

    def _check_task(self, tx: Tx, env_id: str, task_id: object) -> None:
        if not isinstance(task_id, str) or not task_id:
            raise InvalidRequest(f"task: must be the id of a scheduled task, got {task_id!r}")
        found = tx.one("get_task", env_id=env_id, task_id=task_id)
        if found is None:
            env = tx.one("get_environment", id=env_id)
            raise NotFound(
                f"task: {task_id!r} is not defined in this environment; {why_missing(env)}"
            )
        if TaskDefinition.model_validate_json(found["definition"]).schedule is None:
            raise InvalidRequest(
                f"task: {task_id!r} is not a scheduled task; declare it with "
                f"@schedules.task(id={task_id!r}) to give it schedules"
            )

    @staticmethod
    def _get(tx: Tx, env_id: str, schedule_id: str) -> Row:
        row = tx.one("get_schedule", env_id=env_id, id=schedule_id)
        if row is None:
            raise NotFound(f"schedule {schedule_id} not found")
        return row

    # -- reading ----------------------------------------------------------------------------

    def retrieve(self, env_id: str, schedule_id: str, *, fires: int = 10) -> Schedule:
        """A schedule with its next fire times and its latest fires."""
        with self._store.read() as tx:
            row = self._get(tx, env_id, schedule_id)
            recent = tx.all("schedule_fires", schedule_id=schedule_id, limit=fires)
        return schedule_view(row, self._clock(), [fire_view(f) for f in recent])

    def page(
        self,
        env_id: str,
        *,
        task: str | None = None,
        external_id: str | None = None,
        type: str | None = None,
        active: bool | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Schedule], str | None]:
        """A page of schedules, newest first, and the cursor of the next page if any."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
            raise InvalidRequest("limit: must be a whole number from 1 to 500")
        if type is not None and type not in ("DECLARATIVE", "IMPERATIVE"):
            raise InvalidRequest(f"type: must be DECLARATIVE or IMPERATIVE, got {type!r}")
        with self._store.read() as tx:
            rows = tx.all(
                "list_schedules",
                env_id=env_id,
                task_id=task,
                external_id=external_id,
                kind=type,
                active=None if active is None else int(active),
                cursor=cursor,
                limit=limit + 1,
            )
        now = self._clock()
        page = [schedule_view(r, now) for r in rows[:limit]]
        return page, (rows[limit - 1]["id"] if len(rows) > limit else None)

    # -- firing -----------------------------------------------------------------------------

    def fire(self, now: float) -> set[str]:
        """Fire every schedule due by now (and make ahead the runs of times due within
        LOOKAHEAD); the environments with runs queued now. Safe from several servers at once."""
        with self._store.read() as tx:
            envs = [
                r["env_id"]
                for r in tx.all(
                    "environments_with_due_schedules",
                    horizon=now + LOOKAHEAD,
                    alive_after=now - self._timeout,
                )
            ]
        queued: set[str] = set()
        for env_id in sorted(envs):
            while True:
                with self._store.transaction() as tx:
                    tx.lock(env_id)
                    rows = tx.all(
                        "due_schedules",
                        env_id=env_id,
                        now=now,
                        horizon=now + LOOKAHEAD,
                        limit=FIRE_BATCH,
                    )
                    if self._fire(tx, env_id, rows, now):
                        queued.add(env_id)
                if len(rows) < FIRE_BATCH:
                    break
        return queued

    def next_due(self) -> float | None:
        """When `fire` next has something to do (a lower bound), None when no schedule is
        active."""
        with self._store.read() as tx:
            row = tx.one("next_schedule_times")
        times = []
        if row is not None and row["allow_at"] is not None:
            times.append(row["allow_at"] - LOOKAHEAD)
        if row is not None and row["skip_at"] is not None:
            times.append(row["skip_at"])
        return min(times) if times else None

    def _fire(self, tx: Tx, env_id: str, rows: list[Row], now: float) -> bool:
        """Fire `rows` inside `tx` (holding the environment's lock); True when a run was queued
        now. Statements go in batches: a fire costs a few rows, not a few round trips."""
        definitions = {
            r["task_id"]: TaskDefinition.model_validate_json(r["definition"])
            for r in tx.all("list_tasks", env_id=env_id)
        }
        env = tx.one("get_environment", id=env_id)
        deployed = env is not None and env["kind"] != "dev"
        fires: list[dict[str, Any]] = []  # claimed (outcome triggered) or recorded (skipped, error)
        advances: list[dict[str, Any]] = []
        made: dict[tuple[str, float], tuple[Row, Cron]] = {}
        for row in rows:
            spec = Cron(row["cron"], row["timezone"])
            fire_at = row["next_at"]
            if fire_at <= now:
                fire_at = spec.latest_at_or_before(now, since=fire_at)
                # dev never catches up: its times passed while `conveyor dev` was not running
                # (or the laptop slept)
                catch_up = row["catch_up"] if deployed else "none"
                if catch_up == "none" and now - fire_at > MISSED_AFTER:
                    advances.append(_advance(row, spec.next_after(now)))
                    continue
            advances.append(_advance(row, spec.next_after(fire_at)))
            fire = {"schedule_id": row["id"], "fire_at": fire_at, "env_id": env_id, "now": now}
            problem = self._problem(tx, row, definitions, fire_at, now)
            if problem is not None:
                fires.append({**fire, "run_id": None, "outcome": problem[0], "message": problem[1]})
                tx.run(
                    "forget_old_fires_without_runs",
                    schedule_id=row["id"],
                    before=now - KEEP_FIRES_WITHOUT_RUNS,
                )
                continue
            fires.append({**fire, "run_id": None, "outcome": "triggered", "message": None})
            made[(row["id"], fire_at)] = (row, spec)
        tx.run_many("insert_schedule_fire", fires)
        # the times claimed now: one fired before (another server, or before a restart) is not
        claimed = {
            (r["schedule_id"], r["fire_at"])
            for r in tx.all("fires_claimed_now", env_id=env_id, now=now)
        }
        items: list[tuple[str, Any, TriggerOptions]] = []
        order: list[tuple[str, float]] = []
        for (schedule_id, fire_at), (row, spec) in made.items():
            if (schedule_id, fire_at) not in claimed:
                continue
            payload = {
                "timestamp": _iso_text(fire_at),
                "last_timestamp": _iso_text(row["last_at"]) if row["last_at"] is not None else None,
                "timezone": row["timezone"],
                "schedule_id": schedule_id,
                "external_id": row["external_id"],
                "upcoming": _upcoming(spec, fire_at),
            }
            options = TriggerOptions(delay=iso(fire_at)) if fire_at > now else TriggerOptions()
            items.append((row["task_id"], payload, options))
            order.append((schedule_id, fire_at))
        queued = False
        if items:
            # the payloads are made here, to ScheduledPayload's shape: no schema check per run
            runs, queued = self._transitions.create_runs(
                tx, env_id, items, now=now, parent=None, batch_id=None, deployed=deployed,
                checked=True,
            )  # fmt: skip
            tx.run_many(
                "set_fire_run",
                [
                    {"schedule_id": schedule_id, "fire_at": fire_at, "run_id": run.id}
                    for (schedule_id, fire_at), run in zip(order, runs, strict=True)
                ],
            )
            ran = {
                schedule_id: (fire_at, run.id)
                for (schedule_id, fire_at), run in zip(order, runs, strict=True)
            }
            for advance in advances:
                if advance["id"] in ran:
                    advance["last_at"], advance["last_run_id"] = ran[advance["id"]]
        tx.run_many("advance_schedule", advances)
        return queued

    def _problem(
        self,
        tx: Tx,
        row: Row,
        definitions: dict[str, TaskDefinition],
        fire_at: float,
        now: float,
    ) -> tuple[str, str] | None:
        """Why this fire makes no run: ("skipped", why) or ("error", why); None if it does."""
        task = definitions.get(row["task_id"])
        if task is None:
            return "error", f"task {row['task_id']!r} is not defined in this environment"
        if task.schedule is None:
            return "error", f"task {row['task_id']!r} is no longer a scheduled task"
        if row["overlap"] == "skip" and row["last_run_id"] is not None:
            last = tx.one("get_run_by_id", id=row["last_run_id"])
            if last is not None and not RunStatus(last["status"]).is_final:
                return "skipped", f"the previous run {last['id']} is still {last['status']}"
        return None

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    def list(self, env_id: str, **filters: Any) -> list[Schedule]:
        """Every schedule matching the filters of `page` (all pages)."""
        found: list[Schedule] = []
        cursor: str | None = None
        while True:
            page, cursor = self.page(env_id, limit=500, cursor=cursor, **filters)
            found.extend(page)
            if cursor is None:
                return found


def _advance(row: Row, next_at: float | None) -> dict[str, Any]:
    """A schedule moved past a fire time (the time and run it made are added when it made one)."""
    return {"id": row["id"], "next_at": next_at, "last_at": None, "last_run_id": None}


def _iso_text(t: float) -> str:
    return iso(t).isoformat().replace("+00:00", "Z")


@lru_cache(maxsize=4096)
def _upcoming_of(expression: str, timezone: str, fire_at: float) -> tuple[str, ...]:
    spec = Cron(expression, timezone)
    return tuple(_iso_text(t) for t in spec.upcoming(fire_at, UPCOMING))


def _upcoming(spec: Cron, fire_at: float) -> list[str]:
    """The fire times after `fire_at` (the same for every schedule of one cron and zone)."""
    return list(_upcoming_of(spec.expression, spec.timezone, fire_at))


def _settings(row: Row) -> dict[str, Any]:
    return {
        "task_id": row["task_id"],
        "cron": row["cron"],
        "timezone": row["timezone"],
        "external_id": row["external_id"],
        "catch_up": row["catch_up"],
        "overlap": row["overlap"],
        "active": row["active"],
    }


def _cron(cron: object, timezone: object) -> Cron:
    try:
        return Cron.parse(cron, timezone)
    except CronError as exc:
        raise InvalidRequest(str(exc)) from None


def _check_choice(field: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidRequest(f"{field}: must be one of {', '.join(choices)}, got {value!r}")


def _check_text(field: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise InvalidRequest(f"{field}: must be text of 1 to {MAX_TEXT} characters, got {value!r}")
