"""Alerts over a real engine on SQLite and PostgreSQL: channels made, listed, deleted and tested
through the API and the client; a burst of failures gathered into one alert with its count;
deliveries claimed by one sender at a time, retried with backoff against a real HTTP receiver and
signed so that `conveyor.webhooks.verify` accepts them; deploy, queue backlog and empty fleet
events; bad input refused with a 4xx."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi.testclient import TestClient

from conveyor import webhooks
from conveyor.client import Client
from conveyor.engine import Engine, Environment
from conveyor.errors import InvalidRequest, NotFound
from conveyor.models import QueueSpec, RetryPolicy, TaskDefinition, TriggerOptions
from conveyor.platform.alerts import AlertSender, SmtpSettings
from conveyor.protocol import AttemptOutcome, Heartbeat
from tests.bundles import small_bundle
from tests.receivers import http_receiver, smtp_receiver

if TYPE_CHECKING:
    from conftest import Backend, ManualClock

FAST = RetryPolicy(max_attempts=3, factor=2, min_timeout_ms=100, max_timeout_ms=1000)


def define(task_id: str) -> TaskDefinition:
    return TaskDefinition(
        id=task_id, queue=QueueSpec(name=f"task/{task_id}"), retry=RetryPolicy(max_attempts=1)
    )


@pytest.fixture
def env(engine: Engine) -> Environment:
    env = engine.environments.ensure("proj", "prod", "prod")
    engine.workers.register(env.id, "w1", "w1", [define("charge"), define("other")])
    return env


def fail(engine: Engine, env: Environment, task: str, count: int) -> list[str]:
    """`count` runs of `task`, each failed at its only attempt; their ids."""
    made = engine.tasks.batch_trigger(env.id, [(task, {}, TriggerOptions()) for _ in range(count)])
    engine.workers.heartbeat("w1", Heartbeat())
    attempts = engine.workers.lease(env.id, "w1", count).attempts
    assert len(attempts) == count
    engine.workers.complete(
        "w1",
        [
            AttemptOutcome(
                a.run_id,
                a.attempt,
                "aborted",
                error={"name": "Boom", "message": "no"},
                fence=a.fence,
            )
            for a in attempts
        ],
    )
    return [r.id for r in made.runs]


def send_due(engine: Engine, sender: AlertSender) -> int:
    """One round of the platform's sender: claim what is due and send it; how many it sent."""

    async def round_() -> int:
        claimed = engine.alerts.claim()
        async with httpx.AsyncClient(timeout=5) as http:
            for message in claimed:
                await sender._deliver(http, message)
        return len(claimed)

    return asyncio.run(round_())


def test_a_burst_of_1000_failures_is_one_alert_with_its_count(
    engine: Engine, env: Environment, clock: ManualClock
) -> None:
    channel = engine.alerts.create(env.id, event="run.failed", webhook="http://127.0.0.1:9/x")
    assert channel.window_seconds == 60
    runs = fail(engine, env, "charge", 1000)
    fail(engine, env, "other", 2)  # another task: a group of its own
    deliveries = engine.alerts.deliveries(env.id).data
    assert sorted((d.details["task_id"], d.count, d.status) for d in deliveries) == [
        ("charge", 1000, "gathering"),
        ("other", 2, "gathering"),
    ]
    charge = next(d for d in deliveries if d.details["task_id"] == "charge")
    assert charge.run_ids == runs[:5]
    assert engine.alerts.claim() == []  # the window is open: nothing is sent yet
    clock.advance(61)
    claimed = {m.event: m for m in engine.alerts.claim() if b'"charge"' in m.body}
    body = claimed["run.failed"].body
    sent = json.loads(body)
    assert sent["data"]["count"] == 1000 and sent["data"]["run_ids"] == runs[:5]
    assert sent["data"]["error"] == {"name": "Boom", "message": "no"}
    assert sent["environment"]["slug"] == "prod"
    assert "failed 1,000 times" in claimed["run.failed"].subject
    # a failure after the group closed opens the next one
    fail(engine, env, "charge", 1)
    assert [d.count for d in engine.alerts.deliveries(env.id).data if d.status == "gathering"] == [
        1
    ]


def test_a_task_filter_counts_only_that_tasks_failures(engine: Engine, env: Environment) -> None:
    engine.alerts.create(env.id, event="run.failed", email="ops@example.com", task="other")
    fail(engine, env, "charge", 3)
    assert engine.alerts.deliveries(env.id).data == []
    fail(engine, env, "other", 1)
    assert [d.details["task_id"] for d in engine.alerts.deliveries(env.id).data] == ["other"]


def test_a_failing_receiver_is_tried_again_with_backoff_and_the_alert_is_delivered_once(
    engine: Engine, env: Environment, clock: ManualClock
) -> None:
    engine.alerts.retry = FAST
    with http_receiver(answers=[500, 503]) as receiver:
        channel = engine.alerts.create(env.id, event="run.failed", webhook=receiver.url + "/hook")
        assert channel.secret is not None and channel.secret.startswith("whsec_")
        assert channel.secret_hint is not None and channel.secret not in str(
            engine.alerts.list(env.id)
        )
        fail(engine, env, "charge", 2)
        clock.advance(60)
        sender = AlertSender(engine)
        assert send_due(engine, sender) == 1  # 500
        (delivery,) = engine.alerts.deliveries(env.id).data
        assert (delivery.status, delivery.attempts) == ("pending", 1)
        assert delivery.last_error is not None and "HTTP 500" in delivery.last_error
        assert delivery.next_at is not None
        waited = delivery.next_at.timestamp() - clock()
        assert 0.1 <= waited <= 0.2  # min_timeout_ms * R, R in [1, 2)
        assert send_due(engine, sender) == 0  # not before its time
        clock.advance(0.2)
        assert send_due(engine, sender) == 1  # 503
        clock.advance(0.4)
        assert send_due(engine, sender) == 1  # 200
        clock.advance(10)
        assert send_due(engine, sender) == 0
        (delivery,) = engine.alerts.deliveries(env.id).data
        assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 3, None)
        got = receiver.wait_for(3)
        assert len(got) == 3 and {r.headers["Conveyor-Delivery"] for r in got} == {delivery.id}
        for request in got:
            assert request.path == "/hook"
            assert request.headers["Conveyor-Event"] == "run.failed"
            webhooks.verify(request.body, request.headers["Conveyor-Signature"], channel.secret)
            assert request.json()["data"]["count"] == 2
        with pytest.raises(webhooks.SignatureError):
            webhooks.verify(got[0].body, got[0].headers["Conveyor-Signature"], "whsec_other")


def test_a_delivery_that_always_fails_is_given_up_after_its_attempts(
    engine: Engine, env: Environment, clock: ManualClock, free_url: str
) -> None:
    engine.alerts.retry = FAST
    channel = engine.alerts.create(env.id, event="deploy.succeeded", slack=free_url + "/services/T")
    assert channel.target.endswith("/…es/T") and channel.secret is None
    engine.alerts.test(env.id, channel.id)
    sender = AlertSender(engine)
    for _ in range(3):
        assert send_due(engine, sender) == 1
        clock.advance(2)
    (delivery,) = engine.alerts.deliveries(env.id).data
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert delivery.last_error is not None and "ConnectError" in delivery.last_error
    assert send_due(engine, sender) == 0


def test_a_claimed_delivery_is_no_other_senders_until_its_claim_lapses(
    engine: Engine, env: Environment, clock: ManualClock
) -> None:
    channel = engine.alerts.create(env.id, event="run.failed", webhook="http://127.0.0.1:9/x")
    engine.alerts.test(env.id, channel.id)
    # two servers claiming at once share out what is due: one gets it
    results: list[int] = []
    barrier = threading.Barrier(2)

    def claim() -> None:
        barrier.wait()
        results.append(len(engine.alerts.claim()))

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1]
    assert engine.alerts.claim() == []
    # the server that claimed it was killed: once its claim lapses another sends it
    clock.advance(engine.alerts.claim_for + 1)
    (again,) = engine.alerts.claim()
    assert engine.alerts.delivered(again.id, again.claim) is True
    assert engine.alerts.delivered(again.id, "a lapsed claim") is False
    clock.advance(engine.alerts.claim_for + 1)
    assert engine.alerts.claim() == []


def test_deploys_owe_deploy_alerts(engine: Engine, clock: ManualClock) -> None:
    prod = engine.environments.ensure("proj", "prod", "prod")
    ok = engine.alerts.create(prod.id, event="deploy.succeeded", email="ops@example.com")
    bad = engine.alerts.create(prod.id, event="deploy.failed", email="ops@example.com")
    lock = hashlib.sha256(b"").hexdigest()
    made = engine.deployments.deploy(prod.id, [define("charge")], small_bundle(), lock_sha256=lock)
    with pytest.raises(InvalidRequest):
        engine.deployments.deploy(prod.id, [], small_bundle(), lock_sha256=lock)
    engine.deployments.failed(prod.id, "ImportError: no module named stripe")
    by_channel = {}
    for d in engine.alerts.deliveries(prod.id).data:
        by_channel.setdefault(d.channel_id, []).append(d)
    (succeeded,) = by_channel[ok.id]
    assert succeeded.details["version"] == made.version
    assert succeeded.details["tasks"] == ["charge"]
    assert sorted(d.details["error"][:20] for d in by_channel[bad.id]) == [
        "ImportError: no modu",
        "a version needs at l",
    ]


def test_a_queue_backlog_alerts_once_after_it_lasts(
    engine: Engine, env: Environment, clock: ManualClock
) -> None:
    channel = engine.alerts.create(
        env.id, event="queue.backlog", email="ops@example.com", backlog=2, backlog_for="10s"
    )
    assert (channel.backlog, channel.backlog_for_seconds) == (2, 10)
    engine.tasks.batch_trigger(env.id, [("charge", {}, TriggerOptions()) for _ in range(3)])
    engine.alerts.tick(clock())
    clock.advance(5)
    engine.alerts.tick(clock())
    assert engine.alerts.deliveries(env.id).data == []
    clock.advance(6)
    engine.alerts.tick(clock())
    (delivery,) = engine.alerts.deliveries(env.id).data
    assert delivery.event == "queue.backlog"
    assert delivery.details["queue"] == "task/charge" and delivery.details["backlog"] == 3
    clock.advance(5)
    engine.alerts.tick(clock())
    assert len(engine.alerts.deliveries(env.id).data) == 1  # once while it lasts
    # the queue drains, then fills again: a new alert once it has lasted again
    engine.workers.heartbeat("w1", Heartbeat())
    engine.workers.lease(env.id, "w1", 10)
    clock.advance(2)
    engine.alerts.tick(clock())
    engine.tasks.batch_trigger(env.id, [("charge", {}, TriggerOptions()) for _ in range(3)])
    clock.advance(2)
    engine.alerts.tick(clock())
    clock.advance(11)
    engine.alerts.tick(clock())
    assert len(engine.alerts.deliveries(env.id).data) == 2


def test_the_last_worker_stopping_alerts_once(
    engine: Engine, env: Environment, clock: ManualClock
) -> None:
    engine.alerts.create(env.id, event="worker.fleet_empty", webhook="http://127.0.0.1:9/x")
    engine.workers.heartbeat("w1", Heartbeat())
    engine.alerts.tick(clock())
    clock.advance(2)
    engine.alerts.tick(clock())
    assert engine.alerts.deliveries(env.id).data == []
    engine.workers.stopped("w1")
    clock.advance(2)
    engine.alerts.tick(clock())
    clock.advance(2)
    engine.alerts.tick(clock())
    (delivery,) = engine.alerts.deliveries(env.id).data
    assert delivery.event == "worker.fleet_empty"


def test_an_email_reaches_a_real_smtp_server(
    engine: Engine, env: Environment, clock: ManualClock
) -> None:
    with smtp_receiver() as smtp:
        channel = engine.alerts.create(env.id, event="run.failed", email="ops@example.com")
        fail(engine, env, "charge", 3)
        clock.advance(61)
        settings = SmtpSettings(
            host=smtp.host,
            port=smtp.port,
            username=None,
            password=None,
            sender="conveyor@example.com",
            ssl=False,
            starttls=False,
        )
        assert send_due(engine, AlertSender(engine, smtp=settings)) == 1
        (message,) = smtp.wait_for(1)
        assert message["To"] == "ops@example.com"
        assert "task charge failed 3 times" in message["Subject"]
        assert message["X-Conveyor-Delivery"] == engine.alerts.deliveries(env.id).data[0].id
        attached = next(part for part in message.iter_attachments())
        assert json.loads(attached.get_content())["channel_id"] == channel.id
    # without an SMTP server the delivery fails saying so, and is tried again
    fail(engine, env, "charge", 1)
    clock.advance(61)
    assert send_due(engine, AlertSender(engine)) == 1
    latest = engine.alerts.deliveries(env.id).data[0]
    assert latest.status == "pending" and "CONVEYOR_SMTP_URL" in (latest.last_error or "")


def test_channels_through_the_api_and_the_client(
    api: TestClient, backend: Backend, live_server: str
) -> None:
    made = api.post(
        "/api/v1/alerts",
        json={"event": "run.failed", "webhook": "https://example.com/hook", "task": "hello"},
    )
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    assert secret.startswith("whsec_")
    listed = api.get("/api/v1/alerts")
    assert secret not in listed.text
    assert [c["id"] for c in listed.json()["data"]] == [made.json()["id"]]
    tested = api.post(f"/api/v1/alerts/{made.json()['id']}/test")
    assert tested.status_code == 202 and tested.json()["event"] == "alert.test"
    deliveries = api.get("/api/v1/alerts/deliveries")
    assert [d["id"] for d in deliveries.json()["data"]] == [tested.json()["id"]]
    with Client(api_url=live_server, secret_key=backend.key) as client:
        slack = client.alerts.create(
            "queue.backlog", slack="https://hooks.slack.com/services/T/B/xyz", backlog=5
        )
        assert slack.secret is None and "xyz" in slack.target and "/T/B" not in slack.target
        assert [c.id for c in client.alerts.list()] == [made.json()["id"], slack.id]
        assert client.alerts.delete(slack.id).id == slack.id
        with pytest.raises(NotFound):
            client.alerts.delete(slack.id)
        assert client.alerts.test(made.json()["id"]).status == "pending"
        assert len(client.alerts.deliveries()) == 2
    assert api.delete(f"/api/v1/alerts/{made.json()['id']}").status_code == 200
    assert api.get(f"/api/v1/alerts/{made.json()['id']}").status_code == 404
    assert api.get("/api/v1/alerts/deliveries").json()["data"] == []  # went with it


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"event": "run.failed"}, "one of a webhook URL"),
        (
            {"event": "run.failed", "webhook": "https://a.example", "email": "a@b.example"},
            "one of",
        ),
        ({"event": "run.failed", "webhook": "ftp://example.com/x"}, "not an http(s) URL"),
        ({"event": "run.failed", "webhook": "https://"}, "not an http(s) URL"),
        ({"event": "run.failed", "email": "not-an-address"}, "not an email address"),
        ({"event": "deploy.failed", "email": "a@b.example", "task": "x"}, "run.failed only"),
        ({"event": "run.failed", "email": "a@b.example", "queue": "q"}, "queue.backlog only"),
        ({"event": "run.failed", "email": "a@b.example", "backlog": 3}, "queue.backlog only"),
        ({"event": "queue.backlog", "email": "a@b.example", "window": "5s"}, "run.failed only"),
        ({"event": "run.failed", "email": "a@b.example", "window": "2h"}, "between"),
        ({"event": "queue.backlog", "email": "a@b.example", "backlog_for": "9w"}, "between"),
    ],
)
def test_bad_channels_are_refused_with_a_400_naming_the_problem(
    api: TestClient, body: dict[str, object], says: str
) -> None:
    response = api.post("/api/v1/alerts", json=body)
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]["message"]
    assert api.get("/api/v1/alerts").json()["data"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"event": "run.exploded", "email": "a@b.example"},
        {"event": "run.failed", "email": "a@b.example", "backlog": -1},
        {"event": "run.failed", "email": "a@b.example", "window": "soon"},
        {"event": "run.failed", "email": "a@b.example", "extra": 1},
        {"event": "run.failed", "email": 5},
    ],
)
def test_bodies_outside_the_schema_are_a_422(api: TestClient, body: dict[str, object]) -> None:
    response = api.post("/api/v1/alerts", json=body)
    assert response.status_code == 422, response.text


def test_another_environments_key_sees_no_channel(api: TestClient, backend: Backend) -> None:
    made = api.post("/api/v1/alerts", json={"event": "run.failed", "email": "a@b.example"})
    other = {"Authorization": f"Bearer {backend.other_environment()}"}
    assert api.get("/api/v1/alerts", headers=other).json()["data"] == []
    assert api.delete(f"/api/v1/alerts/{made.json()['id']}", headers=other).status_code == 404
    assert api.post(f"/api/v1/alerts/{made.json()['id']}/test", headers=other).status_code == 404


def test_a_receiver_gets_what_the_platform_sends(
    engine: Engine, env: Environment, clock: ManualClock
) -> None:
    """Slack gets `{"text": ...}`; the webhook the signed body."""
    with http_receiver() as receiver:
        engine.alerts.create(env.id, event="run.failed", slack=receiver.url + "/services/x")
        fail(engine, env, "charge", 1)
        clock.advance(61)
        assert send_due(engine, AlertSender(engine)) == 1
        (request,) = receiver.wait_for(1)
        assert request.path == "/services/x"
        assert request.json()["text"].startswith("[proj/prod] task charge failed")
        assert "Conveyor-Signature" not in request.headers


def test_a_deploy_failure_reported_by_the_cli_owes_deploy_failed(
    api: TestClient, backend: Backend
) -> None:
    prod = backend.engine.environments.ensure("proj_test", "prod", "prod")
    key = "cv_prod_" + "p" * 32
    backend.engine.environments.add_api_key(prod.id, key)
    headers = {"Authorization": f"Bearer {key}"}
    made = api.post(
        "/api/v1/alerts", json={"event": "deploy.failed", "email": "a@b.example"}, headers=headers
    )
    assert made.status_code == 201, made.text
    body = {"environment": "prod", "error": "cannot import tasks/broken.py: No module named x"}
    reported = api.post("/api/v1/deployments/failures", json=body, headers=headers)
    assert reported.status_code == 200 and reported.json() == {"reported": True}
    (delivery,) = api.get("/api/v1/alerts/deliveries", headers=headers).json()["data"]
    assert delivery["event"] == "deploy.failed"
    assert delivery["details"]["error"].startswith("cannot import tasks/broken.py")
    # the key of another environment than the deploy meant is refused, and owes nothing
    wrong = api.post("/api/v1/deployments/failures", json={**body, "environment": "staging"})
    assert wrong.status_code == 403
    blank = api.post("/api/v1/deployments/failures", json={**body, "error": "  "}, headers=headers)
    assert blank.status_code == 422
    assert len(api.get("/api/v1/alerts/deliveries", headers=headers).json()["data"]) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_an_email_through_an_smtp_server_that_requires_a_login(
    engine: Engine, env: Environment
) -> None:
    with smtp_receiver(login=("alerts", "s3cret")) as smtp:
        engine.alerts.create(env.id, event="deploy.failed", email="ops@example.com")
        engine.deployments.failed(env.id, "the build broke")

        def settings(password: str) -> SmtpSettings:
            return SmtpSettings(
                host=smtp.host,
                port=smtp.port,
                username="alerts",
                password=password,
                sender="conveyor@example.com",
                ssl=False,
                starttls=False,
            )

        assert send_due(engine, AlertSender(engine, smtp=settings("s3cret"))) == 1
        (message,) = smtp.wait_for(1)
        assert message["Subject"].endswith("a deploy failed")
        assert engine.alerts.deliveries(env.id).data[0].status == "delivered"
