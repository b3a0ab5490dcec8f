"""Scheduled tasks: one with its own cron (declarative: the schedule follows this code), and one
that only schedules made through the API fire (imperative: one per customer).

    conveyor schedules list
    conveyor schedules create --task customer-digest --cron "0 9 * * 1" --tz America/New_York \\
        --external-id acme --deduplication-key acme-digest
"""

from conveyor import logger, schedules


@schedules.task(id="nightly-cleanup", cron="0 3 * * *", timezone="Europe/Paris", overlap="skip")
async def nightly_cleanup(payload: schedules.ScheduledPayload, ctx) -> dict:
    # payload.timestamp: the time this run is for (03:00 Paris time), exact to the second;
    # payload.last_timestamp: the previous one (None the first time)
    since = payload.last_timestamp or payload.timestamp
    logger.info("cleaning up", since=since.isoformat(), until=payload.timestamp.isoformat())
    return {"cleaned_until": payload.timestamp.isoformat()}


@schedules.task(id="customer-digest")
async def customer_digest(payload: schedules.ScheduledPayload) -> dict:
    # one schedule per customer: external_id says whose digest this is
    customer = payload.external_id or "everyone"
    logger.info("sending digest", customer=customer, next=[t.isoformat() for t in payload.upcoming])
    return {"customer": customer, "for": payload.timestamp.isoformat()}
