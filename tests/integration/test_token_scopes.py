"""Public access tokens open exactly the routes they are for, and nothing else: every route of
the OpenAPI document is tried with every kind of credential, and only the pairs of ALLOWED get
through (any answer but 401 and 403); every other pair is 401 or 403.

Routes are read from the app, so a new route is held to this without touching this file: a
route a token may open must be named in `PUBLIC_ROUTES` (conveyor/server/auth.py), or it refuses
them. The realtime routes are named there before they exist; each is covered once it lands.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import jwt
import pytest

from conveyor.engine.auth import Auth
from conveyor.models import TriggerOptions
from conveyor.server import create_app
from conveyor.server.auth import PUBLIC_ROUTES, READ_ROUTES, TRIGGER_ROUTES
from tests.integration.conftest import serving
from tests.integration.test_route_access import _params, minimal

if TYPE_CHECKING:
    from conftest import Backend

CALLBACK = ("POST", "/api/v1/waitpoints/tokens/{token_id}/callback/{signature}")
REALTIME = {
    ("GET", "/api/v1/runs/{run_id}/subscribe"),
    ("GET", "/api/v1/runs/subscribe"),
    ("GET", "/api/v1/runs/{run_id}/streams/{stream}"),
}
ACCOUNT_ROUTES = ("/api/v1/me", "/api/v1/projects")
SUBSCRIBE_BY = ("GET", "/api/v1/runs/subscribe")
TAG = "user-42"


class Scene:
    """Environment A with one run (task hello, tag user-42, in a batch) that tokens read, and
    the ids every route's path needs; a live server over it."""

    def __init__(self, backend: Backend, url: str) -> None:
        self.backend = backend
        self.url = url
        self.http = httpx.Client(timeout=httpx.Timeout(10, read=5))
        engine, env = backend.engine, backend.env
        batch = engine.tasks.batch_trigger(
            env.id, [("hello", {}, TriggerOptions.model_validate({"tags": [TAG]}))]
        )
        self.run_id = batch.runs[0].id
        self.batch_id = batch.batch_id
        token = engine.waitpoints.create_token(env.id)
        self.ids = {
            "run_id": self.run_id,
            "token_id": token["id"],
            "name": "task/hello",
            "task_id": "hello",
            "worker_id": "worker-1",
            "signature": engine.waitpoints.token_signature(token["id"]),
            "ref": env.project,
            "env": env.slug,
            "version": "20270101.1",
            "schedule_id": "sched_nope",
            "action_id": "bulk_nope",
            "variable": "API_TOKEN",
            "stream": "llm",
            "alert_id": "alert_nope",
        }
        doc = httpx.get(f"{url}/openapi.json").json()
        self.components = doc.get("components", {}).get("schemas", {})
        self.operations = {
            (method.upper(), path): op
            for path, item in doc["paths"].items()
            for method, op in item.items()
            if path.startswith("/api/v1/")
        }

    def public(self, read: dict[str, list[str]], **kw: Any) -> str:
        return self.backend.engine.auth.create_public_token(self.backend.env.id, read, **kw).token

    def trigger_token(self, task: str = "hello") -> str:
        return self.backend.engine.auth.create_trigger_token(self.backend.env.id, task).token

    def send(self, method: str, path: str, credential: str | None, query: str = "") -> int:
        names = {name: self.ids[name] for name in _params(path)}
        url = self.url + path.format(**names) + query
        headers = {} if credential is None else {"Authorization": f"Bearer {credential}"}
        body = self.operations[(method, path)].get("requestBody")
        content = None
        if body is not None:
            schema = body["content"]["application/json"]["schema"]
            content = json.dumps(minimal(schema, self.components))
            headers["Content-Type"] = "application/json"
        # a subscription answers with its status, then streams for as long as it is read
        with self.http.stream(method, url, content=content, headers=headers) as response:
            status = response.status_code
            if status in (401, 403):
                response.read()
                code = response.json()["error"]["code"]
                assert code == ("unauthorized" if status == 401 else "forbidden"), (path, code)
                assert credential is None or credential not in response.text  # never echoed
        return status


@pytest.fixture
def scene(backend: Backend) -> Iterator[Scene]:
    app = create_app(backend.engine, rate_limit=False)
    with serving(app) as url:
        scene = Scene(backend, url)
        yield scene
        scene.http.close()
        app.state.wakeups.close()  # subscriptions still open end, so the server stops
        app.state.run_feed.close()


def kinds(scene: Scene) -> dict[str, Callable[[], str | None]]:
    """Every kind of credential, as a function making one (a fresh trigger token each time)."""
    backend = scene.backend
    engine = backend.engine
    other_env = engine.environments.ensure("proj_test", "staging", "staging")
    past = Auth(backend.store, clock=lambda: time.time() - 7200)  # the same database's secret
    expired = past.create_public_token(backend.env.id, {"runs": [scene.run_id]}, 60).token
    used = scene.trigger_token()
    engine.tasks.trigger(backend.env.id, "hello", {}, token=engine.auth.verify(used))
    claims = jwt.decode(scene.public({"runs": [scene.run_id]}), options={"verify_signature": False})
    forged = jwt.encode(claims, b"another database's secret, 32 bytes", algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    return {
        "none": lambda: None,
        "public runs": lambda: scene.public({"runs": [scene.run_id]}),
        "public tags": lambda: scene.public({"tags": [TAG]}),
        "public batches": lambda: scene.public({"batches": [scene.batch_id]}),
        "public tasks": lambda: scene.public({"tasks": ["hello"]}),
        "public expired": lambda: expired,
        "public of another environment": lambda: (
            engine.auth.create_public_token(other_env.id, {"tasks": ["hello"]}).token
        ),
        "public signed elsewhere": lambda: forged,
        "public unsigned": lambda: unsigned,
        "trigger fresh": scene.trigger_token,
        "trigger of another task": lambda: scene.trigger_token("other"),
        "trigger used": lambda: used,
    }


def allowed(kind: str, method: str, path: str) -> bool:
    """Whether credential `kind` opens `method path` (ALLOWED, as a rule)."""
    if (method, path) == CALLBACK:
        return True  # its signed URL is the credential; the header is not read
    if kind in ("public runs", "public tasks"):
        # they read the run, but no tag or batch: a subscription to one is refused
        return (method, path) in READ_ROUTES and (method, path) != SUBSCRIBE_BY
    if kind in ("public tags", "public batches"):
        return (method, path) in READ_ROUTES
    if kind == "trigger fresh":
        return (method, path) in TRIGGER_ROUTES
    return False


def query_for(kind: str, method: str, path: str, scene: Scene) -> str:
    if (method, path) != SUBSCRIBE_BY:
        return ""
    return f"?batch_id={scene.batch_id}" if kind == "public batches" else f"?tag={TAG}"


def test_every_route_opens_to_exactly_the_tokens_allowed_there(scene: Scene) -> None:
    assert len(scene.operations) >= 30
    wrong = []
    for kind, credential in kinds(scene).items():
        for method, path in sorted(scene.operations):
            status = scene.send(method, path, credential(), query_for(kind, method, path, scene))
            through = status not in (401, 403)
            if through != allowed(kind, method, path):
                wrong.append(f"{kind}: {method} {path} answered {status}")
    assert not wrong, "\n".join(wrong)
    # what the tokens did: one run per fresh trigger token, nothing of environment A changed
    engine, env = scene.backend.engine, scene.backend.env
    assert engine.runs.get(env.id, scene.run_id).status == "QUEUED"
    assert engine.waitpoints.get_token(env.id, scene.ids["token_id"])["status"] == "COMPLETED"


def test_an_environment_key_opens_every_route_but_the_account_ones(scene: Scene) -> None:
    """The same routes with the key: the matrix above refuses tokens, not everything."""
    for method, path in sorted(scene.operations):
        status = scene.send(method, path, scene.backend.key, query_for("key", method, path, scene))
        if path.startswith(ACCOUNT_ROUTES):
            assert status == 401, (method, path)  # a personal access token's routes
        else:
            assert status not in (401, 403), (method, path, status)


@pytest.mark.parametrize(("method", "path"), PUBLIC_ROUTES, ids=[p for _, p in PUBLIC_ROUTES])
def test_every_route_a_token_may_open_exists(scene: Scene, method: str, path: str) -> None:
    """The allowlist names real routes: a renamed one would otherwise refuse tokens unnoticed.
    The realtime routes are named before they land; until then they are skipped."""
    if (method, path) in REALTIME and (method, path) not in scene.operations:
        pytest.skip(f"{method} {path} is not served yet")
    assert (method, path) in scene.operations
