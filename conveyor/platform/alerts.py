"""The alert sender every API server runs (`conveyor dev`, `conveyor server`): it claims the
deliveries that are due (conveyor/engine/alerts.py decides what is owed, to whom, and when to
try again) and sends them.

    webhook  POST the JSON body, signed: `Conveyor-Signature: t=<unix>,v1=<hex>` (webhooks.py),
             with `Conveyor-Event` and `Conveyor-Delivery` (the delivery id, the same on every
             attempt); any 2xx is delivered
    slack    POST `{"text": ...}` to the incoming webhook URL
    email    an email over SMTP (the standard library's smtplib, in a thread): the alert in words,
             the JSON body attached

SMTP comes from the server's environment: `CONVEYOR_SMTP_URL` (`smtp://user:password@host:587`,
`smtps://...` for TLS from the start), `CONVEYOR_SMTP_FROM` (the sender address, default
`conveyor@<host>`), `CONVEYOR_SMTP_STARTTLS` (`1` to upgrade a plain connection). Without
`CONVEYOR_SMTP_URL` an email delivery fails, saying so, and is retried like any failure.
"""

from __future__ import annotations

import asyncio
import logging
import os
import smtplib
import socket
import time
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import httpx

from conveyor import webhooks
from conveyor.engine import Engine, Outgoing
from conveyor.errors import ConfigError
from conveyor.version import __version__

log = logging.getLogger("conveyor.alerts")

POLL_INTERVAL = 0.5  # seconds between looks for due deliveries
REPORT_EVERY = 30.0  # seconds between reports while claiming keeps failing
SEND_TIMEOUT = 10.0
SMTP_URL_ENV = "CONVEYOR_SMTP_URL"
SMTP_FROM_ENV = "CONVEYOR_SMTP_FROM"
SMTP_STARTTLS_ENV = "CONVEYOR_SMTP_STARTTLS"


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None
    password: str | None
    sender: str
    ssl: bool  # TLS from the start (smtps://)
    starttls: bool

    @classmethod
    def from_environment(cls) -> SmtpSettings | None:
        """The settings of CONVEYOR_SMTP_*; None without CONVEYOR_SMTP_URL; ConfigError naming
        the variable when it is malformed."""
        url = os.environ.get(SMTP_URL_ENV, "").strip()
        if not url:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError(
                f"{SMTP_URL_ENV} must look like smtp://user:password@host:port (or smtps://)"
            )
        try:
            port = parts.port or (465 if parts.scheme == "smtps" else 25)
        except ValueError:
            raise ConfigError(f"{SMTP_URL_ENV} has a port that is not a number") from None
        sender = os.environ.get(SMTP_FROM_ENV, "").strip() or f"conveyor@{socket.getfqdn()}"
        starttls = os.environ.get(SMTP_STARTTLS_ENV, "").strip().lower() in ("1", "true", "yes")
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            sender=sender,
            ssl=parts.scheme == "smtps",
            starttls=starttls,
        )


def send_email(settings: SmtpSettings, message: Outgoing) -> None:
    """Send one alert by email (blocking: call it in a thread)."""
    email = EmailMessage()
    email["From"] = settings.sender
    email["To"] = message.target
    email["Subject"] = message.subject
    email["X-Conveyor-Event"] = message.event
    email["X-Conveyor-Delivery"] = message.id
    email.set_content(message.text + "\n")
    email.add_attachment(
        message.body, maintype="application", subtype="json", filename="alert.json"
    )
    smtp: smtplib.SMTP = (
        smtplib.SMTP_SSL(settings.host, settings.port, timeout=SEND_TIMEOUT)
        if settings.ssl
        else smtplib.SMTP(settings.host, settings.port, timeout=SEND_TIMEOUT)
    )
    with smtp:
        if settings.starttls and not settings.ssl:
            smtp.starttls()
        if settings.username:
            smtp.login(settings.username, settings.password or "")
        smtp.send_message(email)


class AlertSender:
    """Sends the deliveries this server claims, until stopped (see the module docstring)."""

    def __init__(self, engine: Engine, *, smtp: SmtpSettings | None = None) -> None:
        self.engine = engine
        self.smtp = smtp

    async def run(self) -> None:
        """Claim and send until canceled. A failing claim (the database away) is logged and
        tried again: sending alerts never stops the server."""
        async with httpx.AsyncClient(
            timeout=SEND_TIMEOUT,
            headers={"User-Agent": f"Conveyor-Alerts/{__version__}"},
            follow_redirects=False,
        ) as http:
            reported = 0.0
            while True:
                try:
                    claimed = await asyncio.to_thread(self.engine.alerts.claim)
                except Exception as exc:  # the database away, a secrets key missing
                    if time.monotonic() - reported >= REPORT_EVERY:
                        log.warning("claiming alert deliveries failed: %s", exc)
                        reported = time.monotonic()
                    claimed = []
                if claimed:
                    await asyncio.gather(*(self._deliver(http, m) for m in claimed))
                else:
                    await asyncio.sleep(POLL_INTERVAL)

    async def _deliver(self, http: httpx.AsyncClient, message: Outgoing) -> None:
        try:
            error = await self.send(http, message)
        except Exception as exc:  # a bug of ours must not stop the sender
            log.exception("sending alert %s failed", message.id)
            error = f"{type(exc).__name__}: {exc}"
        try:
            if error is None:
                await asyncio.to_thread(self.engine.alerts.delivered, message.id, message.claim)
            else:
                await asyncio.to_thread(
                    self.engine.alerts.attempt_failed,
                    message.id,
                    message.claim,
                    message.attempt,
                    error,
                )
        except Exception as exc:  # its claim lapses and it is sent again
            log.warning("recording alert %s failed: %s", message.id, exc)

    async def send(self, http: httpx.AsyncClient, message: Outgoing) -> str | None:
        """Send one delivery; None when it was accepted, else why not (one line)."""
        if message.channel == "email":
            if self.smtp is None:
                return f"no SMTP server: start the server with {SMTP_URL_ENV} set"
            try:
                await asyncio.to_thread(send_email, self.smtp, message)
            except (OSError, smtplib.SMTPException) as exc:
                return f"SMTP: {type(exc).__name__}: {exc}"[:500]
            return None
        try:
            if message.channel == "slack":
                response = await http.post(message.target, json={"text": message.text})
            else:
                headers = {
                    "Content-Type": "application/json",
                    "Conveyor-Event": message.event,
                    "Conveyor-Delivery": message.id,
                }
                if message.secret:
                    headers[webhooks.HEADER] = webhooks.sign(message.body, message.secret)
                response = await http.post(message.target, content=message.body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"
