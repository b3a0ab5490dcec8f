"""One task starting others: `await other.trigger(...)` returns at once with the child's
handle; the children run on their own (see them with `conveyor runs list`).

Both are typed by their run functions: `hello_world.trigger` takes a dict, and
`send_welcome_email.trigger` a `WelcomeEmail` (its schema), so a type checker catches a wrong
payload before it runs. This task has a schema too, so a bad address is refused when
`onboard-user` is triggered, before any email is queued.
"""

from typing import Literal

from pydantic import BaseModel, Field
from tasks.emails import EMAIL_PATTERN, WelcomeEmail, send_welcome_email
from tasks.hello import hello_world

from conveyor import logger, schema_task


class Onboarding(BaseModel):
    name: str = Field("Ada", min_length=1)
    email: str = Field("ada@example.com", pattern=EMAIL_PATTERN)
    plan: Literal["free", "pro"] = "free"


@schema_task(id="onboard-user", schema=Onboarding)
async def onboard_user(payload: Onboarding, ctx) -> dict:
    greeting = await hello_world.trigger({"name": payload.name}, tags=[f"user:{payload.email}"])
    welcome = await send_welcome_email.trigger(
        WelcomeEmail(to=payload.email, name=payload.name, plan=payload.plan),
        idempotency_key=f"welcome-{payload.email}",  # a second onboarding does not email twice
        delay="5s",
    )
    logger.info("children triggered", greeting=greeting.id, welcome=welcome.id)
    return {"greeting_run": greeting.id, "welcome_run": welcome.id, "parent": ctx.run.id}
