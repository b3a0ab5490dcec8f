"""Environment variables over a real engine on SQLite and PostgreSQL: set, unset, list and
import through the API and the client, values stored encrypted and never in an answer, bad
names and values refused with a 4xx, and a lease handing the current values to its attempts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from conveyor.client import Client
from conveyor.engine import Engine
from conveyor.errors import InvalidRequest, NotFound
from conveyor.store import open_store

if TYPE_CHECKING:
    from conftest import Backend

SECRET = "s3cr3t-value-for-the-tests-9f2c"
OTHER = "another-secret-value-7b1e"


def trigger(api: TestClient, task: str = "hello") -> str:
    response = api.post(f"/api/v1/tasks/{task}/trigger", json={"payload": {}})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_set_list_unset_through_the_api_never_answer_a_value(
    api: TestClient, backend: Backend
) -> None:
    answers: list[str] = []
    put = api.put("/api/v1/envvars/API_TOKEN", json={"value": SECRET})
    assert put.status_code == 200, put.text
    answers.append(put.text)
    shown = put.json()
    assert shown["name"] == "API_TOKEN" and len(shown["digest"]) == 12
    listed = api.get("/api/v1/envvars")
    answers.append(listed.text)
    assert [v["name"] for v in listed.json()["data"]] == ["API_TOKEN"]
    assert listed.json()["data"][0]["digest"] == shown["digest"]
    # keyed by the secrets key: the hash of a guess does not confirm it
    assert shown["digest"] != hashlib.sha256(SECRET.encode()).hexdigest()[:12]
    version = listed.json()["version"]

    again = api.put("/api/v1/envvars/API_TOKEN", json={"value": OTHER})
    answers.append(again.text)
    assert again.json()["digest"] != shown["digest"]  # a changed value shows another hash
    assert api.get("/api/v1/envvars").json()["version"] == version + 1

    imported = api.post(
        "/api/v1/envvars/import", json={"variables": {"A_URL": "postgres://x", "B": SECRET}}
    )
    assert imported.status_code == 200, imported.text
    answers.append(imported.text)
    assert [v["name"] for v in imported.json()["data"]] == ["A_URL", "B"]
    deleted = api.delete("/api/v1/envvars/API_TOKEN")
    assert deleted.status_code == 200 and deleted.json()["name"] == "API_TOKEN"
    answers.append(deleted.text)
    final = api.get("/api/v1/envvars")
    answers.append(final.text)
    assert [v["name"] for v in final.json()["data"]] == ["A_URL", "B"]
    assert api.delete("/api/v1/envvars/API_TOKEN").status_code == 404
    for text in answers:
        assert SECRET not in text and OTHER not in text and "postgres://x" not in text


@pytest.mark.parametrize(
    ("name", "body", "status", "says"),
    [
        ("1ABC", {"value": "x"}, 400, "not a variable name"),
        ("A-B", {"value": "x"}, 400, "not a variable name"),
        ("CONVEYOR_SECRET_KEY", {"value": "x"}, 400, "reserved"),
        ("conveyor_thing", {"value": "x"}, 400, "reserved"),
        ("BIG", {"value": "x" * (32 * 1024 + 1)}, 400, "at most 32 KiB"),
        ("NUL", {"value": "a\x00b"}, 400, "NUL"),
        ("NOVALUE", {}, 422, "value"),
        ("NUMBER", {"value": 12345678}, 422, "value"),
    ],
)
def test_bad_names_and_values_are_refused_with_a_message(
    api: TestClient, name: str, body: dict[str, Any], status: int, says: str
) -> None:
    response = api.put(f"/api/v1/envvars/{name}", json=body)
    assert response.status_code == status, response.text
    assert says in response.json()["error"]["message"]
    assert "x" * 100 not in response.text and "12345678" not in response.text  # not quoted back
    assert api.get("/api/v1/envvars").json()["data"] == []


def test_an_import_with_one_bad_name_sets_nothing(api: TestClient) -> None:
    response = api.post("/api/v1/envvars/import", json={"variables": {"GOOD": "1", "9BAD": "2"}})
    assert response.status_code == 400
    assert "9BAD" in response.json()["error"]["message"]
    assert api.get("/api/v1/envvars").json()["data"] == []


def test_variables_are_per_environment(api: TestClient, backend: Backend) -> None:
    other_key = backend.other_environment()
    api.put("/api/v1/envvars/ONLY_DEV", json={"value": "1"})
    other = api.get("/api/v1/envvars", headers={"Authorization": f"Bearer {other_key}"})
    assert other.json()["data"] == []
    assert backend.engine.envvars.resolved(backend.env.id) == {"ONLY_DEV": "1"}


def test_values_are_stored_encrypted(api: TestClient, backend: Backend) -> None:
    api.put("/api/v1/envvars/API_TOKEN", json={"value": SECRET})
    with backend.store.read() as tx:
        rows = tx.all("list_env_vars", env_id=backend.env.id)
    assert len(rows) == 1
    stored = json.dumps(rows, default=str)
    assert SECRET not in stored
    assert backend.engine.envvars.resolved(backend.env.id) == {"API_TOKEN": SECRET}


def test_a_lease_hands_its_attempts_the_values_of_now(api: TestClient, backend: Backend) -> None:
    engine = backend.engine
    api.put("/api/v1/envvars/API_TOKEN", json={"value": SECRET})
    first = trigger(api)
    reply = engine.workers.lease(backend.env.id, "worker-1", capacity=10)
    assert [a.run_id for a in reply.attempts] == [first]
    assert reply.attempts[0].env == {"API_TOKEN": SECRET}
    assert SECRET not in repr(reply)  # no log line of a lease shows a value

    api.put("/api/v1/envvars/API_TOKEN", json={"value": OTHER})
    api.put("/api/v1/envvars/MORE", json={"value": "1"})
    trigger(api)
    (spec,) = engine.workers.lease(backend.env.id, "worker-1", capacity=10).attempts
    assert spec.env == {"API_TOKEN": OTHER, "MORE": "1"}

    api.delete("/api/v1/envvars/API_TOKEN")
    trigger(api)
    (spec,) = engine.workers.lease(backend.env.id, "worker-1", capacity=10).attempts
    assert spec.env == {"MORE": "1"}


def test_the_secrets_key_from_the_environment_and_a_lost_key(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.fernet import Fernet

    key, later = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    store = open_store(database)
    store.migrate()
    try:
        monkeypatch.setenv("CONVEYOR_SECRETS_KEY", key)
        engine = Engine(store)
        env = engine.environments.ensure("proj_test", "prod", "prod")
        engine.envvars.set(env.id, "TOKEN", SECRET)
        assert Engine(store).envvars.resolved(env.id) == {"TOKEN": SECRET}
        # rotating: the new key first encrypts, the old one still decrypts
        monkeypatch.setenv("CONVEYOR_SECRETS_KEY", f"{later},{key}")
        assert Engine(store).envvars.resolved(env.id) == {"TOKEN": SECRET}
        monkeypatch.setenv("CONVEYOR_SECRETS_KEY", later)
        with pytest.raises(Exception, match="CONVEYOR_SECRETS_KEY they were set with") as raised:
            Engine(store).envvars.resolved(env.id)
        assert SECRET not in str(raised.value)
        monkeypatch.setenv("CONVEYOR_SECRETS_KEY", "not a key")
        with pytest.raises(Exception, match="must be a Fernet key"):
            Engine(store)
    finally:
        store.close()


def test_the_client_sets_lists_imports_and_unsets(
    live_server: str, backend: Backend, tmp_path: Path
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"# the app's\nexport DB_URL=postgres://db\nTOKEN='{SECRET}'\n")
    with Client(live_server, backend.key) as client:
        shown = client.envvars.set("API_TOKEN", OTHER)
        assert shown.name == "API_TOKEN"
        imported = client.envvars.import_(dotenv=dotenv)
        assert [v.name for v in imported] == ["DB_URL", "TOKEN"]
        assert [v.name for v in client.envvars.import_({"X": "1"})] == ["X"]
        listed = client.envvars.list()
        assert [v.name for v in listed.data] == ["API_TOKEN", "DB_URL", "TOKEN", "X"]
        assert client.envvars.unset("X").name == "X"
        with pytest.raises(NotFound):
            client.envvars.unset("X")
        with pytest.raises(InvalidRequest, match="not a variable name"):
            client.envvars.set("no-dash", "1")
    assert backend.engine.envvars.resolved(backend.env.id) == {
        "API_TOKEN": OTHER,
        "DB_URL": "postgres://db",
        "TOKEN": SECRET,
    }


def test_a_server_without_the_key_leases_nothing(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.fernet import Fernet

    from tests.integration.conftest import task_definitions

    store = open_store(database)
    store.migrate()
    try:
        monkeypatch.setenv("CONVEYOR_SECRETS_KEY", Fernet.generate_key().decode())
        engine = Engine(store)
        env = engine.environments.ensure("proj_test", "prod", "prod")
        engine.workers.register(env.id, "w", "w", task_definitions())
        engine.envvars.set(env.id, "TOKEN", SECRET)
        run = engine.tasks.trigger(env.id, "hello", {})
        monkeypatch.setenv("CONVEYOR_SECRETS_KEY", Fernet.generate_key().decode())
        with pytest.raises(Exception, match="cannot be read"):
            Engine(store).workers.lease(env.id, "w", capacity=10)
        assert engine.runs.get(env.id, run.id).status == "QUEUED"  # not handed out
    finally:
        store.close()
