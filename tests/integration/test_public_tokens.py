"""Public access tokens: a public token reads the runs it names (by id, tag, batch or task) and no
other; a trigger token triggers its task once, however many servers share the database; tokens
are signed JWTs that expire, and a bad request to make one is a 4xx naming the field.

Which routes accept which token is test_token_scopes.py; CORS is test_public_token_cors.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient

import conveyor
from conveyor.client import AsyncClient, Client
from conveyor.client.default import configure
from conveyor.engine import Engine
from conveyor.engine.auth import MAX_EXPIRY
from conveyor.errors import AuthenticationError, InvalidRequest
from conveyor.models import TriggerOptions
from conveyor.server import create_app
from conveyor.server.auth import Reader
from conveyor.store import open_store
from tests.integration.conftest import serving

if TYPE_CHECKING:
    from conftest import Backend


@pytest.fixture
def http(backend: Backend) -> Iterator[TestClient]:
    with TestClient(create_app(backend.engine, rate_limit=False)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def key(backend: Backend) -> dict[str, str]:
    return bearer(backend.key)


def make(http: TestClient, backend: Backend, kind: str, body: dict[str, Any]) -> httpx.Response:
    return http.post(f"/api/v1/auth/{kind}-tokens", json=body, headers=key(backend))


def public(http: TestClient, backend: Backend, read: dict[str, Any], **body: Any) -> str:
    response = make(http, backend, "public", {"read": read, **body})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def trigger_token(http: TestClient, backend: Backend, task: str = "hello", **body: Any) -> str:
    response = make(http, backend, "trigger", {"task": task, **body})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def tagged(backend: Backend, *tags: str, task: str = "hello") -> str:
    options = TriggerOptions.model_validate({"tags": list(tags)})
    return backend.engine.tasks.trigger(backend.env.id, task, {}, options).id


def test_a_public_token_reads_exactly_the_runs_it_names(http: TestClient, backend: Backend) -> None:
    named = tagged(backend)
    mine = tagged(backend, "user-42")
    theirs = tagged(backend, "user-7")
    of_other_task = tagged(backend, task="other")
    batch = backend.engine.tasks.batch_trigger(
        backend.env.id, [("other", {}, TriggerOptions()), ("other", {}, TriggerOptions())]
    )
    in_batch = [run.id for run in batch.runs]
    cases = {
        "runs": ({"runs": [named]}, {named}),
        "tags": ({"tags": ["user-42"]}, {mine}),
        "batches": ({"batches": [batch.batch_id]}, set(in_batch)),
        "tasks": ({"tasks": ["hello"]}, {named, mine, theirs}),
        "all four": (
            {"runs": [named], "tags": ["user-7"], "batches": [batch.batch_id], "tasks": ["nope"]},
            {named, theirs, *in_batch},
        ),
    }
    everything = {named, mine, theirs, of_other_task, *in_batch}
    for name, (read, readable) in cases.items():
        token = public(http, backend, read)
        for run_id in everything:
            response = http.get(f"/api/v1/runs/{run_id}", headers=bearer(token))
            if run_id in readable:
                assert response.status_code == 200, (name, response.text)
                assert response.json()["id"] == run_id
            else:
                assert response.status_code == 403, (name, run_id, response.text)
                message = response.json()["error"]["message"]
                assert "a public token only reads the runs it names" in message
        # a run that does not exist looks like one it may not read: a token tells nothing
        response = http.get("/api/v1/runs/run_nope", headers=bearer(token))
        assert response.status_code == 403, (name, response.text)
    # unless the token names it by id
    response = http.get(
        "/api/v1/runs/run_nope", headers=bearer(public(http, backend, {"runs": ["run_nope"]}))
    )
    assert response.status_code == 404


def test_a_token_is_a_jwt_signed_by_the_database_with_its_scopes(
    http: TestClient, backend: Backend
) -> None:
    before = time.time()
    response = make(http, backend, "public", {"read": {"tags": ["a", "a", "b"]}})
    token = response.json()["token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, backend.engine.auth.secret(), algorithms=["HS256"])
    assert claims["env"] == backend.env.id
    assert claims["kind"] == "public"
    assert claims["scopes"] == {"read": {"tags": ["a", "b"]}}
    assert claims["iss"] == "conveyor"
    assert claims["jti"].startswith("tok_")
    assert before - 1 <= claims["iat"] <= time.time() + 1
    assert claims["exp"] - claims["iat"] == 15 * 60  # the default expiry
    assert response.json()["expires_at"].endswith("Z")
    trigger = jwt.decode(
        trigger_token(http, backend), backend.engine.auth.secret(), algorithms=["HS256"]
    )
    assert trigger["kind"] == "trigger"
    assert trigger["scopes"] == {"trigger": {"tasks": ["hello"]}}
    assert trigger["jti"] != claims["jti"]


@pytest.mark.parametrize(
    ("expires_in", "seconds"), [("1h", 3600), (90, 90), ("30d", MAX_EXPIRY), ("1h30m", 5400)]
)
def test_expires_in_is_a_duration_up_to_30_days(
    http: TestClient, backend: Backend, expires_in: Any, seconds: float
) -> None:
    token = public(http, backend, {"runs": ["run_x"]}, expires_in=expires_in)
    claims = jwt.decode(token, backend.engine.auth.secret(), algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] in (seconds, seconds + 1)


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        ({"read": {}}, 400, "read names nothing"),
        ({"read": {"runs": []}}, 400, "read names nothing"),
        ({"read": {"users": ["a"]}}, 422, "read.users"),
        ({"read": {"runs": "run_x"}}, 422, "read.runs"),
        ({"read": {"runs": [""]}}, 422, "read.runs[0]"),
        ({"read": {"runs": ["r"] * 101}}, 422, "read.runs"),
        ({"read": {"runs": ["r"]}, "expires_in": "31d"}, 400, "expires_in"),
        ({"read": {"runs": ["r"]}, "expires_in": 0}, 400, "expires_in"),
        ({"read": {"runs": ["r"]}, "expires_in": "soon"}, 422, "expires_in"),
        ({"read": {"runs": ["r"]}, "expires_in": True}, 422, "expires_in"),
        ({"read": {"runs": ["r"]}, "expires_in": -5}, 422, "expires_in"),
        ({"runs": ["r"]}, 422, "read: required"),
        ({"read": ["r"]}, 422, "read"),
    ],
)
def test_a_bad_public_token_request_names_the_field(
    http: TestClient, backend: Backend, body: dict[str, Any], status: int, names: str
) -> None:
    response = make(http, backend, "public", body)
    assert response.status_code == status, response.text
    assert names in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({}, "task: required"),
        ({"task": ""}, "task"),
        ({"task": "hello", "expires_in": "90d"}, "expires_in"),
        ({"task": "hello", "read": {}}, "read: unknown field"),
    ],
)
def test_a_bad_trigger_token_request_names_the_field(
    http: TestClient, backend: Backend, body: dict[str, Any], names: str
) -> None:
    response = make(http, backend, "trigger", body)
    assert 400 <= response.status_code < 500, response.text
    assert names in response.json()["error"]["message"]


def test_an_expired_token_is_refused(http: TestClient, backend: Backend) -> None:
    run_id = tagged(backend)
    reading = public(http, backend, {"runs": [run_id]}, expires_in=60)
    triggering = trigger_token(http, backend, expires_in="1m")
    backend.clock.advance(61)
    for method, path, token in (
        ("GET", f"/api/v1/runs/{run_id}", reading),
        ("POST", "/api/v1/tasks/hello/trigger", triggering),
    ):
        response = http.request(method, path, headers=bearer(token), json={})
        assert response.status_code == 401, response.text
        assert "expired at" in response.json()["error"]["message"]
        assert token not in response.text


def test_a_token_signed_elsewhere_or_changed_is_refused(http: TestClient, backend: Backend) -> None:
    run_id = tagged(backend)
    token = public(http, backend, {"runs": [run_id]})
    claims = jwt.decode(token, options={"verify_signature": False})
    header, payload, signature = token.split(".")
    widened = jwt.encode({**claims, "scopes": {"read": {"tasks": ["hello"]}}}, "x" * 32)
    for forged in (
        jwt.encode(claims, "another database's secret, 32 bytes long"),
        jwt.encode(claims, None, algorithm="none"),
        f"{widened.split('.')[0]}.{widened.split('.')[1]}.{signature}",
        jwt.encode({**claims, "iss": "elsewhere"}, backend.engine.auth.secret()),
        jwt.encode({**claims, "kind": "admin"}, backend.engine.auth.secret()),
        f"{header}.{payload}.",
        "eyJ.x.y",
    ):
        response = http.get(f"/api/v1/runs/{run_id}", headers=bearer(forged))
        assert response.status_code == 401, (forged, response.text)
        assert response.json()["error"]["code"] == "unauthorized"


def test_a_token_of_another_environment_reads_nothing_of_this_one(
    http: TestClient, backend: Backend
) -> None:
    run_id = tagged(backend, "user-42")
    other = backend.engine.environments.ensure("proj_test", "staging", "staging")
    for read in ({"runs": [run_id]}, {"tags": ["user-42"]}, {"tasks": ["hello"]}):
        token = backend.engine.auth.create_public_token(other.id, read).token
        response = http.get(f"/api/v1/runs/{run_id}", headers=bearer(token))
        assert response.status_code in (403, 404), response.text  # 404: named by id, not there
        assert "user-42" not in response.text or "reading tags" in response.text
        assert '"status"' not in response.text


def test_no_token_makes_another(http: TestClient, backend: Backend) -> None:
    for token in (public(http, backend, {"tasks": ["hello"]}), trigger_token(http, backend)):
        for kind in ("public", "trigger"):
            body = {"read": {"tasks": ["hello"]}} if kind == "public" else {"task": "hello"}
            response = http.post(f"/api/v1/auth/{kind}-tokens", json=body, headers=bearer(token))
            assert response.status_code == 403, response.text
            assert "this route needs the environment's secret key" in response.text


def test_a_trigger_token_triggers_its_task_once(http: TestClient, backend: Backend) -> None:
    token = trigger_token(http, backend)
    first = http.post(
        "/api/v1/tasks/hello/trigger", json={"payload": {"n": 1}}, headers=bearer(token)
    )
    assert first.status_code == 201, first.text
    run_id = first.json()["id"]
    run = backend.engine.runs.get(backend.env.id, run_id)
    assert (run.task_id, run.payload) == ("hello", {"n": 1})
    # the answer reads the run it made, for a day, and nothing else
    reading = first.json()["public_access_token"]
    claims = jwt.decode(reading, backend.engine.auth.secret(), algorithms=["HS256"])
    assert claims["scopes"] == {"read": {"runs": [run_id]}}
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert http.get(f"/api/v1/runs/{run_id}", headers=bearer(reading)).status_code == 200
    again = http.post("/api/v1/tasks/hello/trigger", json={}, headers=bearer(token))
    assert again.status_code == 401, again.text
    assert "used already" in again.json()["error"]["message"]
    # its one use was its task's: another task, or a batch, is refused
    fresh = trigger_token(http, backend)
    for path in ("/api/v1/tasks/other/trigger", "/api/v1/tasks/hello/batch"):
        body = {"items": [{}]} if path.endswith("batch") else {}
        response = http.post(path, json=body, headers=bearer(fresh))
        assert response.status_code == 403, response.text
    assert (
        http.post("/api/v1/tasks/hello/trigger", json={}, headers=bearer(fresh)).status_code == 201
    )
    # an env key's trigger carries no token
    plain = http.post("/api/v1/tasks/hello/trigger", json={}, headers=key(backend))
    assert plain.json()["public_access_token"] is None


def test_a_trigger_that_fails_leaves_the_token_unused(http: TestClient, backend: Backend) -> None:
    token = trigger_token(http, backend, "process-video")
    bad = http.post(
        "/api/v1/tasks/process-video/trigger", json={"payload": {"nope": 1}}, headers=bearer(token)
    )
    assert bad.status_code == 422, bad.text
    good = http.post(
        "/api/v1/tasks/process-video/trigger",
        json={"payload": {"video_url": "https://example.com/a.mp4"}},
        headers=bearer(token),
    )
    assert good.status_code == 201, good.text


def test_an_idempotency_key_opens_no_run_of_someone_else(
    http: TestClient, backend: Backend
) -> None:
    """A trigger token may give an idempotency key another trigger holds: it gets that run's id
    (as any trigger would), but no token reading it."""
    options = TriggerOptions.model_validate({"idempotency_key": "user-42-report"})
    theirs = backend.engine.tasks.trigger(backend.env.id, "hello", {"secret": 1}, options)
    response = http.post(
        "/api/v1/tasks/hello/trigger",
        json={"options": {"idempotency_key": "user-42-report"}},
        headers=bearer(trigger_token(http, backend)),
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == theirs.id
    assert response.json()["public_access_token"] is None


def test_a_trigger_token_is_used_once_across_servers(database: str, backend: Backend) -> None:
    """Two servers over one database, eight triggers with one token at the same moment: one
    run. The second server checks the token with the secret the first made."""
    store = open_store(database)
    try:
        second = Engine(store)
        engines = [backend.engine, second] * 4
        token = backend.engine.auth.create_trigger_token(backend.env.id, "hello").token
        start = threading.Barrier(len(engines))
        outcomes: list[str] = []

        def trigger(engine: Engine) -> None:
            verified = engine.auth.verify(token)
            start.wait()
            try:
                engine.tasks.trigger(backend.env.id, "hello", {}, token=verified)
            except AuthenticationError:
                outcomes.append("refused")
            else:
                outcomes.append("run")

        threads = [threading.Thread(target=trigger, args=(e,)) for e in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(outcomes) == ["refused"] * 7 + ["run"]
        runs, _ = backend.engine.runs.list(backend.env.id, limit=100)
        assert len(runs) == 1
    finally:
        store.close()


def test_a_reader_checks_tags_and_batches_for_subscriptions(backend: Backend) -> None:
    """What the realtime routes ask before streaming the runs of a tag or a batch."""
    token = backend.engine.auth.verify(
        backend.engine.auth.create_public_token(
            backend.env.id, {"tags": ["user-42"], "batches": ["batch_1"]}
        ).token
    )
    reader = Reader(backend.env.id, token)
    reader.check_tag("user-42")
    reader.check_batch("batch_1")
    for check, value in ((reader.check_tag, "user-7"), (reader.check_batch, "batch_2")):
        with pytest.raises(conveyor.ConveyorError) as refused:
            check(value)
        assert refused.value.code == "forbidden"
        assert value in refused.value.message
    by_key = Reader(backend.env.id)
    by_key.check_tag("anything")
    by_key.check_batch("anything")


def test_the_clients_make_tokens(
    backend: Backend, isolated_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = tagged(backend, "user-42")
    with serving(create_app(backend.engine)) as url:
        with Client(url, backend.key) as client:
            token = client.auth.create_public_token(read={"tags": ["user-42"]}, expires_in="1h")
            assert Client(url, token).runs.retrieve(run_id).id == run_id
            once = client.auth.create_trigger_token("hello", expires_in=60)
            with Client(url, once) as browser:
                browser.trigger("hello", {})
                with pytest.raises(AuthenticationError, match="used already"):
                    browser.trigger("hello", {})
            with pytest.raises(InvalidRequest, match=r"read\.users"):
                client.auth.create_public_token(read={"users": ["a"]})
            with pytest.raises(InvalidRequest, match="expires_in"):
                client.auth.create_public_token(read={"runs": [run_id]}, expires_in="90d")
            with pytest.raises(InvalidRequest, match="read names nothing"):
                client.auth.create_public_token(read={})

        async def main() -> None:
            async with AsyncClient(url, backend.key) as client:
                token = await client.auth.create_public_token(read={"runs": [run_id]})
                assert isinstance(token, str)
                trigger = await client.auth.create_trigger_token("hello")
                assert jwt.decode(trigger, options={"verify_signature": False})["kind"] == "trigger"
            configure(api_url=url, secret_key=backend.key)
            try:
                token = await conveyor.auth.create_public_token(read={"tasks": ["hello"]})
                assert len(token.split(".")) == 3
            finally:
                configure()

        asyncio.run(main())
