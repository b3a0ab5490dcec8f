"""Failing well: a flaky task that succeeds on a later attempt, an abort that is never
retried, and `retry.on_throw` to retry one block in place instead of the whole attempt."""

import random

from conveyor import AbortTaskRunError, logger, retry, task


@task(id="flaky-api-call", retry={"max_attempts": 3, "min_timeout_ms": 500, "factor": 2})
async def flaky_api_call(payload: dict, ctx) -> dict:
    """Fails on its first attempt (and second, if asked), then succeeds."""
    succeed_on = int(payload.get("succeed_on_attempt", 2))
    logger.info("calling the partner API", attempt=ctx.attempt.number)
    if ctx.attempt.number < succeed_on:
        raise ConnectionError(f"partner API timed out (attempt {ctx.attempt.number})")
    return {"status": "ok", "attempts_needed": ctx.attempt.number}


@task(id="charge-card")
async def charge_card(payload: dict) -> dict:
    """A declined card will not be accepted on a retry: abort the run instead of retrying."""
    amount = payload.get("amount_cents")
    if not isinstance(amount, int) or amount <= 0:
        raise AbortTaskRunError(f"amount_cents must be a positive whole number, got {amount!r}")
    if payload.get("card") == "declined":
        raise AbortTaskRunError("card declined: not retrying")
    logger.info("charged", amount_cents=amount)
    return {"charged": amount}


def fetch_exchange_rate(currency: str) -> float:
    # Stands in for an unreliable HTTP call: fails about half the time.
    if random.random() < 0.5:
        raise TimeoutError("rates service did not answer")
    return {"EUR": 0.92, "GBP": 0.79}.get(currency, 1.0)


@task(id="convert-price")
async def convert_price(payload: dict) -> dict:
    """Only the rate lookup is retried (up to 5 times, quickly); the attempt goes on."""
    currency = payload.get("currency", "EUR")
    rate = await retry.on_throw(
        fetch_exchange_rate, currency, max_attempts=5, min_timeout_ms=200, max_timeout_ms=2_000
    )
    return {"currency": currency, "price": round(float(payload.get("usd", 10)) * rate, 2)}
