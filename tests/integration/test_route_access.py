"""Every route under /api/v1 needs a live key and works only inside the key's environment.

Routes are read from the OpenAPI document and requests are built from it (path parameters
filled with ids of environment A, bodies the smallest the schema accepts), so a new route is
held to the same promise without touching this file. The token callback URL is the one
route without a key: its signature is the credential.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi.testclient import TestClient

from conveyor.models import (
    BulkFilters,
    QueueSpec,
    RetryPolicy,
    ScheduledPayload,
    TaskDefinition,
    TaskSchedule,
)
from conveyor.server import create_app
from tests.integration.conftest import task_definitions

if TYPE_CHECKING:
    from conftest import Backend

CALLBACK = ("POST", "/api/v1/waitpoints/tokens/{token_id}/callback/{signature}")
# routes for people, with a personal access token (their own test: test_http_accounts.py)
ACCOUNT_ROUTES = ("/api/v1/me", "/api/v1/projects")
REVOKED_KEY = "cv_dev_" + "r" * 32


def minimal(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """The smallest JSON value `schema` accepts: required fields only, minimum lengths and
    values."""
    if "$ref" in schema:
        return minimal(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return minimal(options[0], components)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return {
            name: minimal(properties.get(name, {}), components)
            for name in schema.get("required", [])
        }
    if kind == "array":
        items = schema.get("prefixItems") or [schema.get("items", {})] * schema.get("minItems", 0)
        return [minimal(item, components) for item in items][
            : max(schema.get("minItems", 0), len(items))
        ]
    if kind == "string":
        return "x" * max(1, schema.get("minLength", 1))
    if kind in ("integer", "number"):
        return schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
    if kind == "boolean":
        return False
    return None


class Api:
    """The operations of the app's OpenAPI document, as requests that can be sent."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        doc = client.get("/openapi.json").json()
        self.components = doc.get("components", {}).get("schemas", {})
        self.operations = {
            (method.upper(), path): op
            for path, item in doc["paths"].items()
            for method, op in item.items()
            if path.startswith("/api/v1/")
        }

    def send(self, method: str, path: str, ids: dict[str, str], headers: dict[str, str]) -> Any:
        url = path.format(**{name: ids[name] for name in _params(path)})
        body = self.operations[(method, path)].get("requestBody")
        content = None
        if body is not None:
            schema = body["content"]["application/json"]["schema"]
            content = json.dumps(minimal(schema, self.components))
            headers = {**headers, "Content-Type": "application/json"}
        return self.client.request(method, url, content=content, headers=headers)


def _params(path: str) -> list[str]:
    return [
        part[1:].split("}")[0].split(":")[0] for part in path.split("/") if part.startswith("{")
    ]


@pytest.fixture
def api(backend: Backend) -> Api:
    return Api(TestClient(create_app(backend.engine, rate_limit=False)))


@pytest.fixture
def ids_of_a(backend: Backend) -> dict[str, str]:
    """Objects of environment A (the backend's): a queued run, a pending token, a queue, a task,
    a registered worker."""
    engine, env = backend.engine, backend.env
    token = engine.waitpoints.create_token(env.id)
    digest = TaskDefinition(
        id="digest",
        queue=QueueSpec(name="task/digest"),
        retry=RetryPolicy(max_attempts=1),
        payload_schema=ScheduledPayload.model_json_schema(),
        schedule=TaskSchedule(),
    )
    engine.workers.set_tasks(env.id, [*task_definitions(), digest])
    return {
        "schedule_id": engine.schedules.create(env.id, task="digest", cron="@daily").id,
        "run_id": engine.tasks.trigger(env.id, "hello", {}).id,
        "token_id": token["id"],
        "name": "task/hello",
        "stream": "llm",
        "task_id": "hello",
        "worker_id": "worker-1",
        "signature": engine.waitpoints.token_signature(token["id"]),
        "ref": env.project,
        "env": env.slug,
        "version": "20270101.1",
        "action_id": engine.bulk.create(env.id, "cancel", BulkFilters(task="hello")).id,
        "variable": engine.envvars.set(env.id, "API_TOKEN", "a value of environment A").name,
        "alert_id": engine.alerts.create(
            env.id, event="run.failed", webhook="http://127.0.0.1:9/environment-a"
        ).id,
    }


def test_every_route_but_the_callback_refuses_a_missing_unknown_or_revoked_key(
    api: Api, backend: Backend, ids_of_a: dict[str, str]
) -> None:
    backend.engine.environments.add_api_key(backend.env.id, REVOKED_KEY)
    assert (
        backend.engine.environments.authenticate(REVOKED_KEY) == backend.env
    )  # cached as live before the revoke
    assert backend.engine.environments.revoke_api_key(REVOKED_KEY) is True
    assert backend.engine.environments.revoke_api_key(REVOKED_KEY) is False  # already revoked
    assert len(api.operations) >= 30
    keyless = []
    for method, path in api.operations:
        for headers in (
            {},
            {"Authorization": "Bearer cv_dev_" + "u" * 32},
            {"Authorization": f"Bearer {REVOKED_KEY}"},
            {"Authorization": "Bearer "},
            {"Authorization": backend.key},
        ):
            response = api.send(method, path, ids_of_a, headers)
            if response.status_code != 401:
                keyless.append((method, path))
                continue
            assert response.json()["error"]["code"] == "unauthorized", (method, path, response.text)
    assert set(keyless) == {CALLBACK}
    # and the refused requests changed nothing
    assert backend.engine.runs.get(backend.env.id, ids_of_a["run_id"]).status == "QUEUED"
    assert (
        backend.engine.waitpoints.get_token(backend.env.id, ids_of_a["token_id"])["status"]
        == "COMPLETED"
    )  # the callback


def engine_of(backend: Backend) -> Any:
    return backend.engine


def other_env(backend: Backend) -> str:
    return backend.engine.environments.ensure("proj_test", "staging", "staging").id


def test_a_key_of_another_environment_sees_and_changes_nothing_of_it(
    api: Api, backend: Backend, ids_of_a: dict[str, str]
) -> None:
    other = {"Authorization": f"Bearer {backend.other_environment()}"}
    for method, path in api.operations:
        if (method, path) == CALLBACK:
            continue
        response = api.send(method, path, ids_of_a, other)
        where = f"{method} {path}: {response.status_code} {response.text[:300]}"
        assert response.status_code < 500, where
        if path.startswith(ACCOUNT_ROUTES):
            assert response.status_code == 401, where  # an environment key is no personal token
        elif (method, path) == ("POST", "/api/v1/workers/{worker_id}/register"):
            assert response.status_code == 409, where  # the id is taken; the worker stays A's
        elif (method, path) == ("POST", "/api/v1/auth/public-tokens"):
            assert response.status_code == 400, where  # the smallest body names nothing to read
        elif path in ("/api/v1/tasks/{task_id}/trigger", "/api/v1/tasks/{task_id}/batch"):
            # the other environment (staging) has no code defining the task, A's definition is
            # not its own: the run it makes is its own and waits for a version defining the task
            assert response.status_code == 201, where
            body = response.json()
            for run in body.get("runs", [body]):
                assert (
                    engine_of(backend).runs.get(other_env(backend), run["id"]).status
                    == "PENDING_VERSION"
                ), where
        elif (method, path) == ("POST", "/api/v1/deployments"):
            assert response.status_code in (400, 422), where  # the smallest body is no valid bundle
        elif (method, path) == ("GET", "/api/v1/deployments/current"):
            assert response.status_code == 404, where  # nothing is deployed there
        elif (method, path) == ("POST", "/api/v1/schedules"):
            assert response.status_code == 400, where  # the smallest body's cron is no cron
        elif (method, path) == ("GET", "/api/v1/runs/subscribe"):
            assert response.status_code == 400, where  # neither a tag nor a batch: no stream
        elif path.startswith("/api/v1/runs/bulk/"):
            assert response.status_code == 400, where  # the smallest body gives no filter
        elif path == "/api/v1/envvars/{variable}":
            # its own variable of that name (set by the PUT, if that came first)
            assert response.status_code in (200, 404), where
        elif (method, path) == ("POST", "/api/v1/envvars/import"):
            assert response.status_code == 400, where  # the smallest body sets nothing
        elif (method, path) == ("POST", "/api/v1/alerts"):
            assert response.status_code == 400, where  # the smallest body names no channel
        elif _params(path):
            assert response.status_code == 404, where
            assert response.json()["error"]["code"] == "not_found", where
        else:
            assert response.status_code in (200, 201), where
            for key, value in ids_of_a.items():  # lists and creations show nothing of A
                if key == "task_id":
                    continue  # a name, which the other environment's own pending runs carry too
                # a short value ("dev") can turn up inside a random id: look for it as a string
                needle = value if len(value) >= 16 else json.dumps(value)
                assert needle not in response.text, where
    engine, env = backend.engine, backend.env
    assert engine.runs.get(env.id, ids_of_a["run_id"]).status == "QUEUED"
    assert engine.waitpoints.get_token(env.id, ids_of_a["token_id"])["status"] == "PENDING"
    assert engine.queues.get(env.id, "task/hello").paused is False
    assert [t.id for t in engine.tasks.list(env.id)] == [
        "digest",
        "encode",
        "hello",
        "other",
        "process-video",
    ]
    assert engine.envvars.resolved(env.id) == {"API_TOKEN": "a value of environment A"}
    assert [a.id for a in engine.alerts.list(env.id).data] == [ids_of_a["alert_id"]]
    engine.workers.check(env.id, "worker-1")  # still registered in A, not stopped
    assert engine.workers.lease(env.id, "worker-1", 1).attempts[0].run_id == ids_of_a["run_id"]


def test_a_long_poll_waiting_when_its_key_is_revoked_hands_out_nothing(
    live_server: str, backend: Backend
) -> None:
    """A worker's lease waits up to `wait` seconds for a run: a key revoked (or rotated) while it
    waits must not lease the next run on the old key."""
    backend.engine.environments.add_api_key(backend.env.id, REVOKED_KEY)
    answers: list[httpx.Response] = []

    def poll() -> None:
        with httpx.Client(base_url=live_server, timeout=30) as http:
            answers.append(
                http.post(
                    "/api/v1/workers/worker-1/lease",
                    json={"capacity": 1, "wait": 10},
                    headers={"Authorization": f"Bearer {REVOKED_KEY}"},
                )
            )

    waiting = threading.Thread(target=poll)
    waiting.start()
    time.sleep(0.5)  # the poll is waiting at the server
    assert backend.engine.environments.revoke_api_key(REVOKED_KEY) is True
    run = backend.engine.tasks.trigger(backend.env.id, "hello", {})  # wakes the poll
    waiting.join(timeout=15)
    assert answers and answers[0].status_code == 401, answers and answers[0].text
    assert answers[0].json()["error"]["code"] == "unauthorized"
    assert backend.engine.runs.get(backend.env.id, run.id).status == "QUEUED"
