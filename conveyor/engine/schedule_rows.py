"""Schedule rows: the declarative schedules kept in step with the code (`declare`, called by
`Transitions.put_tasks` at every load and deploy), and the views of schedule rows. The part that
creates, changes and fires schedules is schedules.py."""

from __future__ import annotations

from datetime import datetime

from conveyor.cron import Cron, CronError, iso
from conveyor.errors import InvalidRequest
from conveyor.ids import new_id
from conveyor.models import Schedule, ScheduleFire, TaskDefinition, TaskSchedule
from conveyor.store import Row, Tx

UPCOMING = 5  # fire times a schedule and a scheduled payload show


def declare(tx: Tx, env_id: str, tasks: list[TaskDefinition], *, dev: bool, now: float) -> None:
    """Keep the declarative schedules of an environment in step with its task definitions: one
    per scheduled task with a cron, made, changed or removed (a run made ahead for a time no
    longer wanted is left to fire: it was due under the code that made it). Activity is kept:
    a declarative schedule deactivated through the API stays so across reloads and deploys. In
    dev, times missed while no worker ran are not caught up."""
    wanted = {t.id: t.schedule for t in tasks if t.schedule is not None and t.schedule.cron}
    for row in tx.all("declared_schedules", env_id=env_id):
        want = wanted.pop(row["task_id"], None)
        if want is None or want.cron is None:
            tx.run("delete_schedule", id=row["id"])
            continue
        spec = _declared(row["task_id"], want)
        next_at = row["next_at"]
        if (spec.expression, spec.timezone) != (row["cron"], row["timezone"]):
            next_at = spec.next_after(now) if row["active"] else None
        elif dev and next_at is not None and next_at < now - 1:
            next_at = spec.next_after(now)
        tx.run(
            "update_schedule",
            id=row["id"],
            task_id=row["task_id"],
            cron=spec.expression,
            timezone=spec.timezone,
            external_id=None,
            catch_up=want.catch_up,
            overlap=want.overlap,
            active=row["active"],
            next_at=next_at,
            now=now,
        )
    for task_id, want in wanted.items():
        assert want is not None and want.cron is not None
        spec = _declared(task_id, want)
        tx.run(
            "insert_schedule",
            id=new_id("sched", now),
            env_id=env_id,
            task_id=task_id,
            kind="DECLARATIVE",
            cron=spec.expression,
            timezone=spec.timezone,
            external_id=None,
            deduplication_key=None,
            active=1,
            catch_up=want.catch_up,
            overlap=want.overlap,
            next_at=spec.next_after(now),
            now=now,
        )


# -- views ------------------------------------------------------------------------------------


def _declared(task_id: str, schedule: TaskSchedule) -> Cron:
    try:
        return Cron.parse(schedule.cron, schedule.timezone)
    except CronError as exc:
        raise InvalidRequest(f"task {task_id!r}: schedule {exc}") from None


def schedule_view(row: Row, now: float, fires: list[ScheduleFire] | None = None) -> Schedule:
    spec = Cron(row["cron"], row["timezone"])
    next_at = row["next_at"] if row["active"] else None
    upcoming: list[datetime] = []
    if next_at is not None:
        upcoming = [iso(next_at)] + [iso(t) for t in spec.upcoming(next_at, UPCOMING - 1)]
    return Schedule(
        id=row["id"],
        task=row["task_id"],
        type=row["kind"],
        cron=row["cron"],
        cron_description=spec.describe(),
        timezone=row["timezone"],
        external_id=row["external_id"],
        deduplication_key=row["deduplication_key"],
        active=bool(row["active"]),
        catch_up=row["catch_up"],
        overlap=row["overlap"],
        next_fire_at=iso(next_at) if next_at is not None else None,
        upcoming=upcoming,
        last_fired_at=iso(row["last_at"]) if row["last_at"] is not None else None,
        last_run_id=row["last_run_id"],
        created_at=iso(row["created_at"]),
        updated_at=iso(row["updated_at"]),
        recent_fires=fires,
    )


def fire_view(row: Row) -> ScheduleFire:
    return ScheduleFire(
        timestamp=iso(row["fire_at"]),
        outcome=row["outcome"],
        run_id=row["run_id"],
        run_status=row["run_status"],
        message=row["message"],
    )
