"""One task starting others: `await other.trigger(...)` returns at once with the child's
handle; the children run on their own (see them with `conveyor runs list`)."""

from tasks.emails import send_welcome_email
from tasks.hello import hello_world

from conveyor import logger, task


@task(id="onboard-user")
async def onboard_user(payload: dict, ctx) -> dict:
    name = payload.get("name", "Ada")
    email = payload.get("email", "ada@example.com")
    greeting = await hello_world.trigger({"name": name}, tags=[f"user:{email}"])
    welcome = await send_welcome_email.trigger(
        {"to": email, "name": name, "plan": payload.get("plan", "free")},
        idempotency_key=f"welcome-{email}",  # a second onboarding does not email twice
        delay="5s",
    )
    logger.info("children triggered", greeting=greeting.id, welcome=welcome.id)
    return {"greeting_run": greeting.id, "welcome_run": welcome.id, "parent": ctx.run.id}
