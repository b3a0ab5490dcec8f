"""A shared queue with a concurrency limit, a task-level retry policy and lifecycle hooks.

Both tasks below share `reports`: at most 2 of their runs execute at once, however many
are triggered. Runs that wait (for a child, a token, a delay) give their slot back.
`build-report` tells its progress in its metadata (`metadata.set`, `metadata.increment`).
"""

import asyncio

from conveyor import logger, metadata, queue, task

reports = queue("reports", concurrency_limit=2)


async def report_done(payload: dict, output: dict, ctx) -> None:
    logger.info("report ready", report=output["report"], attempts=ctx.attempt.number)


def report_failed(payload: dict, error, ctx) -> None:
    # Runs exactly once when the run ends FAILED, CRASHED, TIMED_OUT, ... (never on a retry).
    logger.error("report failed for good", customer=payload.get("customer"), error=str(error))


@task(
    id="build-report",
    queue=reports,
    max_duration=120,
    retry={"max_attempts": 4, "factor": 1.8, "min_timeout_ms": 500, "max_timeout_ms": 5_000},
    on_success=report_done,
    on_failure=report_failed,
)
async def build_report(payload: dict, ctx) -> dict:
    customer = payload.get("customer", "acme")
    logger.info("building report", customer=customer, queue="reports")
    # progress a page or a backend can follow live: runs.subscribe(run_id), or the dashboard
    sections = 4
    metadata.set("sections", sections)
    for _ in range(sections):
        await asyncio.sleep(float(payload.get("seconds", 2)) / sections)
        metadata.increment("done", 1)
    if payload.get("fail"):
        raise RuntimeError(f"the data warehouse rejected the query for {customer}")
    return {"report": f"reports/{customer}/{ctx.run.id}.pdf"}


@task(id="export-csv", queue=reports)
async def export_csv(payload: dict) -> dict:
    rows = int(payload.get("rows", 1000))
    await asyncio.sleep(1)
    logger.info("exported", rows=rows)
    return {"rows": rows}
