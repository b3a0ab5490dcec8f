"""Alerts end to end, with real receivers: a local HTTP server (webhooks and Slack incoming
webhooks) and an aiosmtpd SMTP server the platform's processes are pointed at
(CONVEYOR_SMTP_URL).

On `conveyor dev` and on the team path (`conveyor server` on PostgreSQL with two remote `conveyor
worker`s): a failing task reaches a webhook whose signature `conveyor.webhooks.verify` accepts,
Slack and an email; a queue's backlog alerts; on the team path the fleet going empty alerts. A
server of its own takes `conveyor alerts create` and `conveyor deploy` (succeeded, failed). Two
servers on one PostgreSQL: the server holding a pending delivery is killed with kill -9 and the
other delivers it, once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Client, webhooks
from tests.databases import postgres_schema
from tests.e2e.conftest import (
    TOKEN,
    DevServer,
    ServerProcess,
    Shop,
    TeamPlatform,
    kill_tree,
    make_project,
    topology,
)
from tests.receivers import HttpReceiver, Received, SmtpReceiver, http_receiver, smtp_receiver


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpReceiver]:
    with smtp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as got:
        yield got


@pytest.fixture(scope="module", params=["dev", "team"])
def alerting(
    request: pytest.FixtureRequest, smtp: SmtpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevServer | TeamPlatform]:
    """A platform of each topology of this module's own, whose server sends email through the
    module's SMTP server."""
    saved = {name: os.environ.get(name) for name in ("CONVEYOR_SMTP_URL", "CONVEYOR_SMTP_FROM")}
    os.environ["CONVEYOR_SMTP_URL"] = smtp.url
    os.environ["CONVEYOR_SMTP_FROM"] = "conveyor@e2e.example"
    try:
        root = make_project(tmp_path_factory.mktemp(f"alerts-{request.param}"))
        with topology(request.param, root) as platform:
            platform.start()
            yield platform
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def at(path: str):
    return lambda r: r.path == path


def test_a_failing_task_reaches_a_signed_webhook_slack_and_an_email(
    alerting: DevServer | TeamPlatform, receiver: HttpReceiver, smtp: SmtpReceiver
) -> None:
    kind = alerting.kind
    with alerting.client() as client:
        hook = client.alerts.create(
            "run.failed", webhook=f"{receiver.url}/hook-{kind}", task="aborter", window="1s"
        )
        slack = client.alerts.create(
            "run.failed", slack=f"{receiver.url}/slack-{kind}", task="aborter", window="1s"
        )
        mail = client.alerts.create(
            "run.failed", email=f"ops-{kind}@example.com", task="aborter", window="1s"
        )
        assert hook.secret is not None
        runs = [client.trigger("aborter", {}).id for _ in range(3)]
        for run_id in runs:
            assert client.runs.poll(run_id, timeout=30).status == "FAILED"

        def counted(requests: list[Received]) -> int:
            return sum(r.json()["data"]["count"] for r in requests)

        deadline = time.monotonic() + 20
        while counted(receiver.wait_for(1, where=at(f"/hook-{kind}"))) < 3:
            assert time.monotonic() < deadline, "the webhook did not get the three failures"
            time.sleep(0.1)
        hooks = receiver.wait_for(1, where=at(f"/hook-{kind}"))
        for request in hooks:
            webhooks.verify(request.body, request.headers.get("Conveyor-Signature"), hook.secret)
            body = request.json()
            assert body["event"] == "run.failed" and body["data"]["task_id"] == "aborter"
            assert body["data"]["error"]["message"] == "stop here"
            assert set(body["data"]["run_ids"]) <= set(runs)
        with pytest.raises(webhooks.SignatureError):
            webhooks.verify(
                hooks[0].body + b" ", hooks[0].headers["Conveyor-Signature"], hook.secret
            )

        (posted, *_) = receiver.wait_for(1, where=at(f"/slack-{kind}"))
        assert "task aborter failed" in posted.json()["text"]
        assert "Conveyor-Signature" not in posted.headers

        deadline = time.monotonic() + 20
        while not any(m["To"] == f"ops-{kind}@example.com" for m in smtp.messages):
            assert time.monotonic() < deadline, "no email came"
            time.sleep(0.1)
        email = next(m for m in smtp.messages if m["To"] == f"ops-{kind}@example.com")
        assert email["From"] == "conveyor@e2e.example"
        assert "task aborter failed" in email["Subject"]

        # each recorded as delivered once its receiver has answered
        deadline = time.monotonic() + 10
        while not {hook.id, slack.id, mail.id} <= {
            d.channel_id for d in client.alerts.deliveries() if d.status == "delivered"
        }:
            assert time.monotonic() < deadline, client.alerts.deliveries()
            time.sleep(0.1)
        for channel in (hook, slack, mail):
            client.alerts.delete(channel.id)


def test_a_queue_backlog_alerts_once_it_lasts(
    alerting: DevServer | TeamPlatform, receiver: HttpReceiver
) -> None:
    kind = alerting.kind
    path = f"/backlog-{kind}"
    with alerting.client() as client:
        channel = client.alerts.create(
            "queue.backlog",
            webhook=receiver.url + path,
            queue="parked",
            backlog=2,
            backlog_for="2s",
        )
        client.queues.pause("parked")
        parked = [client.trigger("expiring", {}).id for _ in range(3)]
        try:
            started = time.monotonic()
            (request,) = receiver.wait_for(1, where=at(path), timeout=20)
            assert time.monotonic() - started >= 1.5  # over the threshold for 2 s first
            data = request.json()["data"]
            assert (data["queue"], data["backlog"], data["threshold"]) == ("parked", 3, 2)
            webhooks.verify(
                request.body, request.headers["Conveyor-Signature"], channel.secret or ""
            )
            time.sleep(1.5)  # more ticks of the condition
            assert len(receiver.wait_for(1, where=at(path))) == 1  # once while it lasts
        finally:
            for run_id in parked:
                client.runs.cancel(run_id)
            client.queues.resume("parked")
            client.alerts.delete(channel.id)


def test_the_fleet_going_empty_alerts(
    alerting: DevServer | TeamPlatform, receiver: HttpReceiver
) -> None:
    if not isinstance(alerting, TeamPlatform):
        pytest.skip("conveyor dev's worker lives and stops with its server")
    path = "/fleet"
    with alerting.client() as client:
        channel = client.alerts.create("worker.fleet_empty", webhook=receiver.url + path)
        time.sleep(1.5)  # the tick sees the workers up
        assert receiver.wait_for(0, where=at(path)) == []
        for worker in alerting.workers:
            worker.stop()
        try:
            (request,) = receiver.wait_for(1, where=at(path), timeout=20)
            assert request.json()["event"] == "worker.fleet_empty"
            assert request.json()["environment"]["slug"] == "prod"
        finally:
            for worker in alerting.workers:
                worker.launch()
            for worker in alerting.workers:
                worker.wait_loaded(30)
            client.alerts.delete(channel.id)


# -- a server of its own: the CLI, and deploys --------------------------------------------------

TASKS = """
from conveyor import task


@task(id="greet")
async def greet(payload):
    return {"hello": "world"}
"""


def test_conveyor_alerts_and_conveyor_deploy(shop: Shop, receiver: HttpReceiver) -> None:
    server, root, key = shop.server, shop.root, shop.prod_key
    (root / "tasks" / "app.py").write_text(TASKS)
    env = {
        **os.environ,
        "CONVEYOR_API_URL": server.api_url,
        "CONVEYOR_SECRET_KEY": key,
        "PYTHONUNBUFFERED": "1",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "conveyor.cli.main", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    made = cli(
        "alerts",
        "create",
        "--env",
        "prod",
        "--on",
        "deploy.succeeded",
        "--webhook",
        receiver.url + "/deployed",
    )
    assert made.returncode == 0, made.stderr
    secret = made.stdout.split("Signing secret  ")[1].split()[0]
    failed_alert = cli(
        "alerts",
        "create",
        "--env",
        "prod",
        "--on",
        "deploy.failed",
        "--slack",
        receiver.url + "/deploy-failed",
    )
    assert failed_alert.returncode == 0, failed_alert.stderr
    listed = cli("alerts", "list", "--env", "prod")
    assert "deploy.succeeded" in listed.stdout and "deploy.failed" in listed.stdout
    assert secret not in listed.stdout

    deployed = cli("deploy", "--env", "prod")
    assert deployed.returncode == 0, deployed.stderr
    version = re.search(r"(\d{8}\.\d+) is current", deployed.stdout)
    assert version, deployed.stdout
    (request,) = receiver.wait_for(1, where=at("/deployed"))
    webhooks.verify(request.body, request.headers["Conveyor-Signature"], secret)
    assert request.json()["data"]["version"] == version.group(1)
    assert request.json()["data"]["tasks"] == ["greet"]

    (root / "tasks" / "broken.py").write_text("import not_a_module_anywhere\n")
    broken = cli("deploy", "--env", "prod")
    assert broken.returncode == 1 and "not_a_module_anywhere" in broken.stderr
    (posted,) = receiver.wait_for(1, where=at("/deploy-failed"))
    assert "a deploy failed" in posted.json()["text"]
    assert "not_a_module_anywhere" in posted.json()["text"]
    assert len(receiver.wait_for(1, where=at("/deployed"))) == 1


# -- two servers on one PostgreSQL: a server killed while a delivery is pending -----------------


def test_a_delivery_pending_on_a_killed_server_is_sent_by_another_once(tmp_path: Path) -> None:
    with postgres_schema() as url, http_receiver(answers=[503]) as hook:
        first = ServerProcess(tmp_path, url, name="first")
        output = first.start()
        second = ServerProcess(tmp_path, url, name="second")
        try:
            token = TOKEN.search(output)
            assert token, output
            with Client(first.api_url, token.group(0)) as admin:
                project = admin.projects.create("Kill")
                key = admin.projects.key(project.id, "prod").secret_key
            with Client(first.api_url, key) as client:
                channel = client.alerts.create("deploy.failed", webhook=hook.url + "/once")
                client.deployments.report_failure(environment="prod", error="the build broke")
                # the first server tries, the receiver answers 503: the delivery is pending, to
                # be tried again after a backoff of 1 to 2 s
                hook.wait_for(1)
                deadline = time.monotonic() + 10
                while client.alerts.deliveries()[0].attempts != 1:  # its failure recorded
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
                assert first.proc is not None
                kill_tree(first.proc)
            second.start()
            got = hook.wait_for(2, timeout=20)
            time.sleep(2)  # and nobody sends it again
            assert len(hook.received) == 2
            ids = {r.headers["Conveyor-Delivery"] for r in got}
            assert len(ids) == 1
            assert channel.secret is not None
            for request in got:
                webhooks.verify(request.body, request.headers["Conveyor-Signature"], channel.secret)
            with Client(second.api_url, key) as client:
                (delivery,) = client.alerts.deliveries()
            assert (delivery.status, delivery.attempts) == ("delivered", 2)
            assert delivery.id in ids
        finally:
            second.stop()
            first.stop()
