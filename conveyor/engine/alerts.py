"""`engine.alerts`: alert channels of an environment and the deliveries owed to them.

    a run fails ──(its transaction)──▶ counted in its task's open group ─┐
    a deploy is made or refused ──(its transaction)──▶ a delivery        ├─▶ claimed by a server's
    tick: a queue over N for M, the fleet gone ──▶ a delivery            │   sender ─▶ delivered
    POST /api/v1/alerts/{id}/test ──▶ a delivery ────────────────────────┘   (or retried, failed)

A channel sends one event to a webhook (signed, see conveyor/webhooks.py), a Slack incoming
webhook or an email address. Events: `run.failed` (a run ended FAILED, CRASHED, SYSTEM_FAILURE,
TIMED_OUT or EXPIRED), `deploy.succeeded`, `deploy.failed`, `queue.backlog` (more than `backlog`
runs QUEUED in a queue for `backlog_for` seconds), `worker.fleet_empty` (the environment had
live workers and has none).

Deliveries are rows, written in the transaction of what they report (the run's end, the deploy)
or by the tick under the channel's lock, so none is lost and a condition alerts once. Failures of
one task are gathered: the first opens a group that counts every failure of that task until the
channel's window (60 s by default) has passed since it, then it is sent once with the count and
the first run ids. Sending is the platform's (conveyor/platform/alerts.py, on every API server):
`claim` hands due deliveries to one sender for `claim_for` seconds (SKIP LOCKED on PostgreSQL),
the sender reports `delivered` or `attempt_failed` (retried with exponential backoff and jitter,
conveyor/retries.py, up to `max_attempts`). A server killed before it reports leaves the claim
to expire, and another sends the delivery: at least once, never by two servers at once; every
body carries its delivery id for a receiver that must not act twice.

Secrets (a webhook's signing secret, a Slack URL, which is a credential) are encrypted with the
server's secrets key, as environment variables are (envvars.py).
"""

from __future__ import annotations

import builtins
import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from conveyor import retries
from conveyor.durations import iso, parse_duration
from conveyor.engine.envvars import EnvVars
from conveyor.engine.views import json_text, moment
from conveyor.errors import InvalidRequest, NotFound
from conveyor.ids import new_id
from conveyor.models import (
    FAILURE_STATUSES,
    AlertChannel,
    AlertChannelList,
    AlertDelivery,
    AlertDeliveryList,
    CreatedAlertChannel,
    RetryPolicy,
    RunStatus,
)
from conveyor.store import Row, Store, Tx

EVENTS = ("run.failed", "deploy.succeeded", "deploy.failed", "queue.backlog", "worker.fleet_empty")
TEST_EVENT = "alert.test"
CHANNELS = ("webhook", "slack", "email")
DEFAULT_WINDOW = 60.0  # seconds a run.failed group gathers the failures of its task
MAX_WINDOW = 3600.0
DEFAULT_BACKLOG = 100
DEFAULT_BACKLOG_FOR = 300.0
MAX_BACKLOG_FOR = 7 * 86400.0
MAX_CHANNELS = 100  # per environment
MAX_URL = 2000
MAX_DETAILS = 4096  # characters of JSON a reported deploy failure's details may add
RUN_IDS_KEPT = 5  # run ids a group carries (the gather_run_failure query keeps this many)
CONDITION_EVERY = 1.0  # seconds between checks of the backlog and fleet conditions
EMAIL = re.compile(r"^[^@\s,;<>\"']+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
# how deliveries are tried again: 8 attempts over about 4 minutes
RETRY = RetryPolicy(max_attempts=8, factor=2, min_timeout_ms=1000, max_timeout_ms=120_000)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A delivery claimed for sending: where it goes and what it says (the platform's sender
    does the sending; nothing here does I/O)."""

    id: str
    claim: str
    channel: str  # webhook, slack, email
    target: str  # the URL (a Slack URL decrypted) or the address
    secret: str | None  # a webhook's signing secret
    event: str
    body: bytes  # the JSON body (a webhook's, and the email's attachment)
    subject: str  # one line: the email subject, the first line of a Slack message
    text: str  # the message in words (Slack, email)
    attempt: int  # 1-based


def _check_url(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{what}: a URL is needed")
    value = value.strip()
    if len(value) > MAX_URL:
        raise InvalidRequest(f"{what}: a URL is at most {MAX_URL} characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"{what}: {value[:80]!r} is not an http(s) URL")
    if any(c.isspace() for c in value):
        raise InvalidRequest(f"{what}: a URL cannot hold spaces")
    return value


def _check_email(value: str) -> str:
    value = value.strip() if isinstance(value, str) else ""
    if len(value) > 254 or not EMAIL.match(value):
        raise InvalidRequest(f"{value[:80]!r} is not an email address")
    return value


def _seconds(value: float | str, what: str, low: float, high: float) -> float:
    try:
        seconds = parse_duration(value, name=what)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    if not low <= seconds <= high:
        raise InvalidRequest(f"{what} must be between {low:g}s and {high:g}s, got {seconds:g}s")
    return seconds


def _hint(secret: str) -> str:
    return f"{secret[:6]}…{secret[-4:]}"


def _slack_hint(url: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/…{url[-4:]}"


def channel_view(row: Row, *, created: bool = False, secret: str | None = None) -> AlertChannel:
    fields: dict[str, Any] = {
        "id": row["id"],
        "event": row["event"],
        "channel": row["kind"],
        "target": row["target"],
        "secret_hint": row["secret_hint"],
        "task": row["task_filter"],
        "queue": row["queue_filter"],
        "backlog": row["backlog"],
        "backlog_for_seconds": row["backlog_for"],
        "window_seconds": row["group_window"],
        "created_at": moment(row["created_at"]),
    }
    if created:
        return CreatedAlertChannel(**fields, secret=secret)
    return AlertChannel(**fields)


def delivery_view(row: Row) -> AlertDelivery:
    done = row["status"] in ("delivered", "failed")
    return AlertDelivery(
        id=row["id"],
        channel_id=row["channel_id"],
        event=row["event"],
        status=row["status"],
        count=row["count"],
        run_ids=[r for r in (row["run_ids"] or "").split(",") if r],
        details=json.loads(row["details"] or "{}"),
        attempts=row["attempts"],
        last_error=row["last_error"],
        next_at=None if done else moment(row["next_at"]),
        first_at=moment(row["first_at"]),
        last_at=moment(row["last_at"]),
        created_at=moment(row["created_at"]),
        delivered_at=moment(row["delivered_at"]),
    )


def alert_body(row: Row, env: Row | None) -> dict[str, Any]:
    """The JSON body of a delivery (docs/alerts.md)."""
    data: dict[str, Any] = dict(json.loads(row["details"] or "{}"))
    if row["event"] == "run.failed":
        data["count"] = row["count"]
        data["run_ids"] = [r for r in (row["run_ids"] or "").split(",") if r]
        data["first_at"] = iso(row["first_at"])
        data["last_at"] = iso(row["last_at"])
    return {
        "id": row["id"],
        "event": row["event"],
        "created_at": iso(row["created_at"]),
        "environment": {
            "id": row["env_id"],
            "project": env["project"] if env else None,
            "slug": env["slug"] if env else None,
        },
        "channel_id": row["channel_id"],
        "data": data,
    }


def alert_words(body: dict[str, Any]) -> tuple[str, str]:
    """(subject, text) of an alert in words, for Slack and email."""
    env = body["environment"]
    where = f"{env.get('project') or ''}/{env.get('slug') or env.get('id')}"
    data = body["data"]
    event = body["event"]
    if event == "run.failed":
        count = data.get("count", 1)
        runs = ", ".join(data.get("run_ids", []))
        more = "" if count <= len(data.get("run_ids", [])) else ", …"
        error = (data.get("error") or {}).get("message") or data.get("status") or ""
        subject = f"[{where}] task {data.get('task_id')} failed" + (
            f" {count:,} times" if count > 1 else ""
        )
        text = f"{subject}. Runs: {runs}{more}." + (f"\nFirst error: {error}" if error else "")
    elif event == "deploy.succeeded":
        subject = f"[{where}] deployed version {data.get('version')}"
        text = f"{subject} ({len(data.get('tasks', []))} tasks)."
    elif event == "deploy.failed":
        subject = f"[{where}] a deploy failed"
        text = f"{subject}: {data.get('error')}"
    elif event == "queue.backlog":
        subject = f"[{where}] queue {data.get('queue')} has {data.get('backlog'):,} runs waiting"
        text = (
            f"{subject}: more than {data.get('threshold'):,} for "
            f"{data.get('for_seconds'):g}s (since {data.get('since')})."
        )
    elif event == "worker.fleet_empty":
        subject = f"[{where}] no worker is running"
        text = f"{subject}: the environment's last worker stopped at {data.get('since')}."
    else:
        subject = f"[{where}] a test alert from Conveyor"
        text = f"{subject}: this channel works."
    return subject, text


class Alerts:
    """Alert channels and deliveries (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        envvars: EnvVars,
        worker_timeout: float = 30.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._envvars = envvars
        self._worker_timeout = worker_timeout
        self.retry = RETRY  # how failed deliveries are tried again (tests make it fast)
        self.claim_for = 60.0  # seconds a sender holds a delivery before another may take it
        self._lock = threading.Lock()
        self._checked_at = 0.0

    # -- channels ---------------------------------------------------------------------------

    def create(
        self,
        env_id: str,
        *,
        event: str,
        webhook: str | None = None,
        slack: str | None = None,
        email: str | None = None,
        task: str | None = None,
        queue: str | None = None,
        backlog: int | None = None,
        backlog_for: float | str | None = None,
        window: float | str | None = None,
    ) -> CreatedAlertChannel:
        """Add a channel; a webhook's signing secret is in the answer this once."""
        if event not in EVENTS:
            raise InvalidRequest(
                f"{str(event)[:40]!r} is not an alert event; one of {', '.join(EVENTS)}"
            )
        given = [
            (k, v)
            for k, v in (("webhook", webhook), ("slack", slack), ("email", email))
            if v is not None
        ]
        if len(given) != 1:
            raise InvalidRequest(
                "an alert channel is one of a webhook URL, a Slack URL or an email address"
            )
        kind, value = given[0]
        secret: str | None = None
        sealed_value: str | None = None
        if kind == "webhook":
            target = _check_url(value, "webhook")
            secret = "whsec_" + secrets.token_urlsafe(24)
            sealed_value, hint = secret, _hint(secret)
        elif kind == "slack":
            url = _check_url(value, "slack")
            target, sealed_value, hint = _slack_hint(url), url, None
        else:
            target, hint = _check_email(value), None
        if task is not None and event != "run.failed":
            raise InvalidRequest("a task filter goes with run.failed only")
        if task is not None and not (isinstance(task, str) and 0 < len(task) <= 200):
            raise InvalidRequest("a task id is 1 to 200 characters")
        if queue is not None and event != "queue.backlog":
            raise InvalidRequest("a queue filter goes with queue.backlog only")
        if queue is not None and not (isinstance(queue, str) and 0 < len(queue) <= 200):
            raise InvalidRequest("a queue name is 1 to 200 characters")
        if (backlog is not None or backlog_for is not None) and event != "queue.backlog":
            raise InvalidRequest("backlog and its duration go with queue.backlog only")
        if window is not None and event != "run.failed":
            raise InvalidRequest("a grouping window goes with run.failed only")
        count: int | None = None
        lasting: float | None = None
        if event == "queue.backlog":
            count = DEFAULT_BACKLOG if backlog is None else backlog
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 10**9:
                raise InvalidRequest("backlog is a number of runs from 0 to 1,000,000,000")
            lasting = (
                DEFAULT_BACKLOG_FOR
                if backlog_for is None
                else _seconds(backlog_for, "the backlog's duration", 0, MAX_BACKLOG_FOR)
            )
        grouped = DEFAULT_WINDOW if window is None else _seconds(window, "window", 0, MAX_WINDOW)
        now = self._clock()
        channel_id = new_id("alert", now)
        with self._store.transaction() as tx:
            tx.lock(env_id)
            existing = tx.one("count_alert_channels", env_id=env_id)
            if existing is not None and existing["n"] >= MAX_CHANNELS:
                raise InvalidRequest(
                    f"an environment has at most {MAX_CHANNELS} alert channels; delete some first"
                )
            tx.run(
                "insert_alert_channel",
                id=channel_id,
                env_id=env_id,
                event=event,
                kind=kind,
                target=target,
                secret=None if sealed_value is None else self._envvars.seal(tx, sealed_value),
                secret_hint=hint,
                task_filter=task,
                queue_filter=queue,
                backlog=count,
                backlog_for=lasting,
                group_window=grouped,
                now=now,
            )
            row = tx.one("get_alert_channel", env_id=env_id, id=channel_id)
        assert row is not None
        made = channel_view(row, created=True, secret=secret)
        assert isinstance(made, CreatedAlertChannel)
        return made

    def list(self, env_id: str) -> AlertChannelList:
        with self._store.read() as tx:
            rows = tx.all("list_alert_channels", env_id=env_id)
        return AlertChannelList(data=[channel_view(r) for r in rows])

    def get(self, env_id: str, channel_id: str) -> AlertChannel:
        with self._store.read() as tx:
            row = tx.one("get_alert_channel", env_id=env_id, id=channel_id)
        if row is None:
            raise NotFound(f"no alert channel {str(channel_id)[:80]!r} in this environment")
        return channel_view(row)

    def delete(self, env_id: str, channel_id: str) -> AlertChannel:
        """Remove a channel and what it was still owed."""
        with self._store.transaction() as tx:
            row = tx.one("delete_alert_channel", env_id=env_id, id=channel_id)
            if row is None:
                raise NotFound(f"no alert channel {str(channel_id)[:80]!r} in this environment")
            tx.run("delete_alert_channel_deliveries", channel_id=channel_id)
            tx.run("delete_alert_channel_conditions", channel_id=channel_id)
        return channel_view(row)

    def test(self, env_id: str, channel_id: str) -> AlertDelivery:
        """Owe the channel a test alert, sent at once."""
        now = self._clock()
        delivery_id = new_id("alertdl", now)
        with self._store.transaction() as tx:
            if tx.one("get_alert_channel", env_id=env_id, id=channel_id) is None:
                raise NotFound(f"no alert channel {str(channel_id)[:80]!r} in this environment")
            tx.run(
                "insert_alert_delivery",
                id=delivery_id,
                channel_id=channel_id,
                env_id=env_id,
                event=TEST_EVENT,
                group_key=delivery_id,
                details=json_text({"message": "a test alert: this channel works"}),
                count=1,
                next_at=now,
                now=now,
            )
            row = tx.one("get_alert_delivery", env_id=env_id, id=delivery_id)
        assert row is not None
        return delivery_view(row)

    def deliveries(self, env_id: str, limit: int = 50) -> AlertDeliveryList:
        """The environment's latest deliveries, newest first."""
        with self._store.read() as tx:
            rows = tx.all("list_alert_deliveries", env_id=env_id, limit=max(1, min(limit, 500)))
        return AlertDeliveryList(data=[delivery_view(r) for r in rows])

    # -- events, inside the transactions of what they report --------------------------------

    def run_ended(
        self, tx: Tx, row: Row, status: RunStatus, error: dict[str, Any] | None, now: float
    ) -> None:
        """A run ended (inside the transaction that ends it): a failure counts in its task's
        open group of each run.failed channel of the environment."""
        if status not in FAILURE_STATUSES:
            return
        channels = tx.all("alert_channels_of_event", env_id=row["env_id"], event="run.failed")
        if not channels:
            return
        message = None
        if error:
            message = {"name": error.get("name"), "message": str(error.get("message", ""))[:1000]}
        details = json_text({"task_id": row["task_id"], "status": status.value, "error": message})
        for channel in channels:
            if channel["task_filter"] is not None and channel["task_filter"] != row["task_id"]:
                continue
            tx.run(
                "gather_run_failure",
                id=new_id("alertdl", now),
                channel_id=channel["id"],
                env_id=row["env_id"],
                group_key=f"task:{row['task_id']}",
                details=details,
                run_id=row["id"],
                send_at=now + channel["group_window"],
                now=now,
            )

    def deployed(self, tx: Tx, env_id: str, details: dict[str, Any], now: float) -> None:
        """A version was deployed (inside the deploy's transaction)."""
        self._owe(tx, env_id, "deploy.succeeded", details, now)

    def deploy_failed(self, env_id: str, error: str, details: dict[str, Any] | None = None) -> None:
        """A deploy was refused or failed to build: its own transaction (the deploy's, if any,
        was undone)."""
        now = self._clock()
        extra = dict(details or {})
        if len(json_text(extra)) > MAX_DETAILS:  # what the deploying machine said, bounded
            extra = {}
        with self._store.transaction() as tx:
            self._owe(tx, env_id, "deploy.failed", {**extra, "error": error[:2000]}, now)

    def _owe(
        self,
        tx: Tx,
        env_id: str,
        event: str,
        details: dict[str, Any],
        now: float,
        channels: builtins.list[Row] | None = None,
        subject: str = "",
    ) -> None:
        if channels is None:
            channels = tx.all("alert_channels_of_event", env_id=env_id, event=event)
        for channel in channels:
            delivery_id = new_id("alertdl", now)
            tx.run(
                "insert_alert_delivery",
                id=delivery_id,
                channel_id=channel["id"],
                env_id=env_id,
                event=event,
                group_key=subject or delivery_id,
                details=json_text(details),
                count=1,
                next_at=now,
                now=now,
            )

    # -- the tick: conditions that last -----------------------------------------------------

    def tick(self, now: float) -> None:
        """Check the conditions of queue.backlog and worker.fleet_empty channels (at most once a
        CONDITION_EVERY), each channel in a transaction under its lock, so several servers
        ticking at once alert once."""
        with self._lock:
            if now - self._checked_at < CONDITION_EVERY:
                return
            self._checked_at = now
        with self._store.read() as tx:
            channels = tx.all("alert_condition_channels")
        for channel in channels:
            with self._store.transaction() as tx:
                tx.lock(f"alert:{channel['id']}")
                if channel["event"] == "queue.backlog":
                    self._check_backlog(tx, channel, now)
                else:
                    self._check_fleet(tx, channel, now)

    def _check_backlog(self, tx: Tx, channel: Row, now: float) -> None:
        known = {
            r["subject"]: r for r in tx.all("alert_conditions_of_channel", channel_id=channel["id"])
        }
        threshold = channel["backlog"]
        over = {
            r["queue"]: r["n"]
            for r in tx.all("alert_queue_backlogs", env_id=channel["env_id"], now=now)
            if r["n"] > threshold and channel["queue_filter"] in (None, r["queue"])
        }
        for queue, count in over.items():
            seen = known.get(queue)
            if seen is None:
                tx.run(
                    "put_alert_condition",
                    channel_id=channel["id"],
                    subject=queue,
                    state="above",
                    since=now,
                )
                seen = {"state": "above", "since": now}
            if seen["state"] == "above" and now - seen["since"] >= channel["backlog_for"]:
                details = {
                    "queue": queue,
                    "backlog": count,
                    "threshold": threshold,
                    "for_seconds": channel["backlog_for"],
                    "since": iso(seen["since"]),
                }
                self._owe(
                    tx,
                    channel["env_id"],
                    "queue.backlog",
                    details,
                    now,
                    [channel],
                    f"queue:{queue}",
                )
                tx.run(
                    "put_alert_condition",
                    channel_id=channel["id"],
                    subject=queue,
                    state="alerted",
                    since=seen["since"],
                )
        for queue in known.keys() - over.keys():  # back under the threshold: may alert again
            tx.run("clear_alert_condition", channel_id=channel["id"], subject=queue)

    def _check_fleet(self, tx: Tx, channel: Row, now: float) -> None:
        known = tx.one("alert_conditions_of_channel", channel_id=channel["id"])
        live = tx.one(
            "alert_live_workers", env_id=channel["env_id"], since=now - self._worker_timeout
        )
        if live is not None and live["n"] > 0:
            if known is None or known["state"] != "up":
                tx.run(
                    "put_alert_condition",
                    channel_id=channel["id"],
                    subject="fleet",
                    state="up",
                    since=now,
                )
        elif known is not None and known["state"] == "up":
            details = {"since": iso(now), "up_since": iso(known["since"])}
            self._owe(tx, channel["env_id"], "worker.fleet_empty", details, now, [channel], "fleet")
            tx.run(
                "put_alert_condition",
                channel_id=channel["id"],
                subject="fleet",
                state="empty",
                since=now,
            )

    # -- sending (the platform's sender) ----------------------------------------------------

    def claim(self, limit: int = 20) -> builtins.list[Outgoing]:
        """Take up to `limit` due deliveries for this caller to send, for `claim_for` seconds;
        each with what to send and where."""
        now = self._clock()
        due = self.next_due(now)
        if due is None or due > now:  # a read, not a write, while nothing is due
            return []
        claim = secrets.token_hex(8)
        out: builtins.list[Outgoing] = []
        with self._store.transaction() as tx:
            rows = tx.all(
                "claim_alert_deliveries",
                claim=claim,
                until=now + self.claim_for,
                now=now,
                limit=limit,
            )
            envs: dict[str, Row | None] = {}
            for row in rows:
                channel = tx.one("alert_channel_by_id", id=row["channel_id"])
                if channel is None:  # deleted while it was owed
                    continue
                if row["env_id"] not in envs:
                    envs[row["env_id"]] = tx.one("get_environment", id=row["env_id"])
                body = alert_body(row, envs[row["env_id"]])
                subject, text = alert_words(body)
                secret = self._envvars.unseal(tx, channel["secret"]) if channel["secret"] else None
                target = secret if channel["kind"] == "slack" and secret else channel["target"]
                out.append(
                    Outgoing(
                        id=row["id"],
                        claim=claim,
                        channel=channel["kind"],
                        target=target,
                        secret=secret if channel["kind"] == "webhook" else None,
                        event=row["event"],
                        body=json.dumps(body, separators=(",", ":")).encode(),
                        subject=subject,
                        text=text,
                        attempt=row["attempts"] + 1,
                    )
                )
        return out

    def delivered(self, delivery_id: str, claim: str) -> bool:
        """The sender holding `claim` sent the delivery; False if its claim had lapsed (another
        sender may have sent it too)."""
        with self._store.transaction() as tx:
            return tx.run("alert_delivered", id=delivery_id, claim=claim, now=self._clock()) > 0

    def attempt_failed(self, delivery_id: str, claim: str, attempt: int, error: str) -> bool:
        """The sender's attempt failed: tried again after a backoff, or, past the last attempt,
        the delivery is `failed`."""
        now = self._clock()
        last = attempt >= self.retry.max_attempts
        delay = retries.retry_delay_ms(self.retry, attempt) / 1000.0
        with self._store.transaction() as tx:
            return (
                tx.run(
                    "alert_attempt_failed",
                    id=delivery_id,
                    claim=claim,
                    status="failed" if last else "pending",
                    next_at=now if last else now + delay,
                    error=error[:1000],
                )
                > 0
            )

    def next_due(self, now: float | None = None) -> float | None:
        """When the next delivery a sender may claim is due (None: none is owed)."""
        now = self._clock() if now is None else now
        with self._store.read() as tx:
            row = tx.one("next_alert_delivery_time", now=now)
        return None if row is None else row["next_at"]
