"""A schema task: the payload is validated by a pydantic model when it is triggered (a bad
payload is refused right away) and again before each attempt."""

from typing import Literal

from pydantic import BaseModel, Field

from conveyor import logger, schema_task

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+$"


class WelcomeEmail(BaseModel):
    to: str = Field(pattern=EMAIL_PATTERN)
    name: str = Field(min_length=1)
    plan: Literal["free", "pro"] = "free"


@schema_task(id="send-welcome-email", schema=WelcomeEmail, max_duration=60)
async def send_welcome_email(payload: WelcomeEmail, ctx) -> dict:
    subject = f"Welcome to Acme, {payload.name}!"
    if payload.plan == "pro":
        subject += " Your Pro trial has started."
    logger.info("sending email", to=payload.to, subject=subject)
    return {"to": payload.to, "subject": subject, "message_id": f"msg_{ctx.run.id}"}
