"""The scheduled task the benchmark's schedules fire: `tick`, declared with no cron of its own
(the benchmark makes its schedules through the API). Its runs are never started."""

from conveyor import schedules


@schedules.task(id="tick")
async def tick(payload: schedules.ScheduledPayload) -> None:
    return None
