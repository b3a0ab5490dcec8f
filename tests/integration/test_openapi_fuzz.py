"""Every operation of the OpenAPI document, fuzzed with valid and invalid input: whatever the
input, the answer is never a 5xx, and its status and body are the ones the document declares.

Operations are read from the API's router, so a new route is fuzzed without touching this
file. Half the cases use ids that exist (a run, a task, a queue, a token, a worker), so the
fuzzing reaches the engine and not only the not-found answers.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
import schemathesis.specs.openapi.checks
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS as REGISTERED

from conveyor.models import (
    BulkFilters,
    QueueSpec,
    RetryPolicy,
    ScheduledPayload,
    TaskDefinition,
    TaskSchedule,
)
from conveyor.server import create_app
from conveyor.server.api import api_router
from tests.integration.conftest import task_definitions

if TYPE_CHECKING:
    from conftest import Backend

# per operation and per mode (valid, invalid): about 40 s for the whole API; more by the variable
EXPLORE = os.environ.get("CONVEYOR_FUZZ_EXAMPLES")
MAX_EXAMPLES = int(EXPLORE or "20")
# Every check schemathesis has: no 5xx; status codes, content types, headers and bodies as
# documented; a request the schema allows is accepted and one it forbids is refused; `Allow`
# lists exactly the methods of a path. (The stateful ones need sequences of calls and pass
# trivially on single cases.)
CHECKS = REGISTERED.get_all()
# Schedules take a cron expression and an IANA time zone, checked beyond what a JSON Schema can
# say (a minute of 61, a zone that does not exist): a schema-valid one may be refused with a 400
# naming the field. Every other check holds for them. So do public access tokens: they must read
# something (`read` names at least one run, tag, batch or task) and end within 30 days (a
# duration's text is checked against that after its form). A worker's task definitions (and a
# deploy's) carry their schedule's cron and zone and their rate limit's period (at most a
# century) too, and a subscription to runs needs one of `tag` and
# `batch_id` (two optional parameters, exactly one of them given: no JSON Schema of a query).
CHECKED_BEYOND_THE_SCHEMA = {
    ("POST", "/api/v1/schedules"),
    ("PUT", "/api/v1/schedules/{schedule_id}"),
    ("POST", "/api/v1/auth/public-tokens"),
    ("POST", "/api/v1/auth/trigger-tokens"),
    ("POST", "/api/v1/workers/{worker_id}/register"),
    ("POST", "/api/v1/workers/{worker_id}/tasks"),
    ("POST", "/api/v1/deployments"),
    ("GET", "/api/v1/runs/subscribe"),
    # a debounce's max_delay is more than 0: the schema says it of seconds, not of a text such
    # as "0s" (a duration's pattern cannot)
    ("POST", "/api/v1/tasks/{task_id}/trigger"),
    ("POST", "/api/v1/tasks/{task_id}/batch"),
    ("POST", "/api/v1/batches"),
    # a bulk action needs at least one filter (or all: true), and a cancel an unfinished status
    ("POST", "/api/v1/runs/bulk/cancel"),
    ("POST", "/api/v1/runs/bulk/replay"),
    ("POST", "/api/v1/runs/bulk/count"),
    # a variable's name may not start with CONVEYOR_ (reserved), a value holds no NUL and is
    # at most 32 KiB of UTF-8 (bytes, not characters), an import sets at least one
    ("PUT", "/api/v1/envvars/{variable}"),
    ("POST", "/api/v1/envvars/import"),
    # an alert channel is exactly one of a webhook, a Slack URL (http(s)) and an email address,
    # its filters and options go with their event only, durations within their bounds
    ("POST", "/api/v1/alerts"),
}


def api_operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation of the API's OpenAPI document (no engine needed)."""
    app = FastAPI()
    app.include_router(api_router)
    return sorted(
        (method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item
    )


OPERATIONS = api_operations()


def known_ids(backend: Backend) -> dict[str, str]:
    """A value that exists for each path parameter of the API."""
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
    schedule = engine.schedules.create(env.id, task="digest", cron="0 9 * * 1")
    return {
        "schedule_id": schedule.id,
        "run_id": engine.tasks.trigger(env.id, "hello", {}).id,
        "task_id": "hello",
        "name": "task/hello",
        "stream": "llm",
        "token_id": token["id"],
        "signature": engine.waitpoints.token_signature(token["id"]),
        "worker_id": "worker-1",
        "action_id": engine.bulk.create(env.id, "cancel", BulkFilters(task="nobody")).id,
        "alert_id": engine.alerts.create(
            env.id, event="run.failed", webhook="http://127.0.0.1:9/fuzz"
        ).id,
    }


_loaded: list[Any] = []


def api_schema(app: FastAPI) -> Any:
    """The API's schema as schemathesis reads it from /openapi.json, bound to `app`. Loaded
    once per session (it takes seconds; every app serves the same document), then pointed at
    each test's app."""
    if not _loaded:
        _loaded.append(schemathesis.openapi.from_asgi("/openapi.json", app))
    schema = _loaded[0]
    schema.app = app
    return schema


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_input_makes_the_server_fail(method: str, path: str, backend: Backend) -> None:
    app = create_app(backend.engine, rate_limit=False)
    # long polls and subscriptions answer at once, as when the server stops: no 30 s leases, no
    # endless event streams
    app.state.wakeups.close()
    app.state.run_feed.close()
    operation = api_schema(app)[path][method]
    existing = {name: value for name, value in known_ids(backend).items() if "{" + name in path}
    cases = st.one_of(
        *(
            operation.as_strategy(mode, path_parameters=fixed)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            for fixed in ({}, existing)
        )
    )

    @given(case=cases)
    # the same cases on every run (CI must not fail by luck); CONVEYOR_FUZZ_EXAMPLES explores
    # further, at random
    @settings(
        max_examples=2 * MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=EXPLORE is None,
    )
    def answers_as_documented(case: Any) -> None:
        # a case made to break the headers may have dropped the key on purpose: then it goes without
        broken_headers = case.meta is not None and any(
            location.value == "header" and info.mode == GenerationMode.NEGATIVE
            for location, info in case.meta.components.items()
        )
        response = case.call(
            headers=None if broken_headers else {"Authorization": f"Bearer {backend.key}"}
        )
        checks = CHECKS
        if (method, path) in CHECKED_BEYOND_THE_SCHEMA:
            checks = [c for c in CHECKS if c.__name__ != "positive_data_acceptance"]
        case.validate_response(response, checks=checks)

    answers_as_documented()


def test_every_route_is_fuzzed() -> None:
    assert len(OPERATIONS) >= 30
    assert ("POST", "/api/v1/tasks/{task_id}/trigger") in OPERATIONS
    assert ("GET", "/api/v1/runs/{run_id}/trace") in OPERATIONS
    assert ("POST", "/api/v1/workers/{worker_id}/lease") in OPERATIONS
